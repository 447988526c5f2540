// The settings view: the global default mode, which applies to new sessions only.

import { modeLabel, modeWhere } from "./format.js";

const $ = (id) => document.getElementById(id);

export class SettingsView {
  constructor(api, { onDefault }) {
    this.api = api;
    this.onDefault = onDefault; // (mode) => void: the new default, once the server has it
    this.current = null;
    $("open-settings").addEventListener("click", () => this.show());
    $("settings-close").addEventListener("click", () => $("settings-dialog").close());
    $("settings-dialog").addEventListener("close", () => $("open-settings").focus());
    $("settings-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
  }

  setModes(modes) {
    $("default-persistence").replaceChildren(
      ...modes.map((mode) => {
        const option = document.createElement("option");
        option.value = mode;
        option.textContent = `${modeLabel(mode)} — ${modeWhere(mode)}`;
        return option;
      }),
    );
    if (this.current) $("default-persistence").value = this.current;
  }

  async load() {
    const settings = await this.api.settings();
    this.current = settings.defaultPersistence;
    $("default-persistence").value = this.current;
    return this.current;
  }

  // Opens the view with the server's current default; the choice can be changed once
  // it is read (so that what is read never overwrites a choice being made).
  async show() {
    this.say("");
    this.setBusy(true);
    $("settings-dialog").showModal();
    try {
      await this.load();
      this.setBusy(false);
      $("default-persistence").focus();
    } catch (exc) {
      this.say(`Could not read the settings: ${exc.message}`);
      $("settings-close").focus();
    }
  }

  setBusy(busy) {
    $("default-persistence").disabled = busy;
    $("settings-save").disabled = busy;
  }

  async save() {
    const mode = $("default-persistence").value;
    this.setBusy(true);
    try {
      const settings = await this.api.saveSettings(mode);
      this.current = settings.defaultPersistence;
      this.say(`Saved. New sessions will use ${modeLabel(this.current)}; existing ones keep theirs.`);
      this.onDefault(this.current);
    } catch (exc) {
      if (this.current) $("default-persistence").value = this.current;
      const why = exc.code === "forbidden" ? "this server's configuration sets it" : exc.message;
      this.say(`Not saved: ${why}.`);
    } finally {
      this.setBusy(false);
      if (!$("settings-dialog").contains(document.activeElement)) $("settings-save").focus();
    }
  }

  say(text) {
    $("settings-status").textContent = text;
  }
}
