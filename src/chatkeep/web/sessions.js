// The session panel: the list (title or id, mode, message count, last activity, expired),
// creating a session in a chosen mode, deleting one after a confirmation, switching.

import { countHistory, forgetHistory } from "./local-history.js";
import { ago, isExpired, modeLabel, modeWhere, plural, sessionName } from "./format.js";

const $ = (id) => document.getElementById(id);

export class SessionPanel {
  constructor(api, { onOpen, onGone }) {
    this.api = api;
    this.onOpen = onOpen; // (session) => void
    this.onGone = onGone; // (sessionId, why) => void
    this.sessions = new Map();
    this.currentId = null;
    this.nextCursor = null;
    this.loaded = false;
    this.pendingDelete = null;
    this.list = $("session-list");
    this.status = $("sessions-status");
    this.bind();
  }

  bind() {
    $("create-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.create();
    });
    $("sessions-retry").addEventListener("click", () => this.refresh());
    $("load-more").addEventListener("click", () => this.loadMore());
    $("delete-cancel").addEventListener("click", () => $("delete-dialog").close());
    $("delete-confirm").addEventListener("click", () => this.confirmDelete());
    $("delete-dialog").addEventListener("close", () => {
      const id = this.pendingDelete;
      this.pendingDelete = null;
      const button = id && this.list.querySelector(`[data-delete="${CSS.escape(id)}"]`);
      if (button) button.focus();
    });
    setInterval(() => this.render(), 30000);
  }

  // -- the create form ----------------------------------------------------------------
  setModes(modes, defaultMode) {
    const select = $("new-persistence");
    select.replaceChildren(
      ...modes.map((mode) => {
        const option = document.createElement("option");
        option.value = mode;
        option.textContent = `${modeLabel(mode)} — ${modeWhere(mode)}`;
        return option;
      }),
    );
    select.value = modes.includes(defaultMode) ? defaultMode : modes[0];
  }

  setDefaultMode(mode) {
    const select = $("new-persistence");
    if ([...select.options].some((o) => o.value === mode)) select.value = mode;
  }

  async create() {
    const form = $("create-form");
    const error = $("create-error");
    const title = form.elements.title.value.trim();
    const body = { persistence: form.elements.persistence.value };
    if (title) body.metadata = { title };
    error.hidden = true;
    $("create-session").disabled = true;
    try {
      const session = await this.api.createSession(body);
      form.elements.title.value = "";
      this.upsert(session);
      this.open(session.id);
    } catch (exc) {
      error.textContent = `Could not create the session: ${exc.message}`;
      error.hidden = false;
    } finally {
      $("create-session").disabled = false;
    }
  }

  // -- loading ------------------------------------------------------------------------
  async refresh() {
    if (!this.loaded) this.showStatus("Loading sessions…");
    $("sessions-retry").hidden = true;
    try {
      const page = await this.api.listSessions();
      const expired = new Set([...this.sessions.values()].filter((s) => s.expired).map((s) => s.id));
      this.sessions = new Map(page.sessions.map((s) => [s.id, { ...s, expired: expired.has(s.id) }]));
      this.nextCursor = page.nextCursor;
      this.loaded = true;
      this.render();
    } catch (exc) {
      this.showStatus(`Could not load the sessions: ${exc.message}`);
      this.list.setAttribute("aria-busy", "false");
      $("sessions-retry").hidden = false;
    }
  }

  async loadMore() {
    if (!this.nextCursor) return;
    try {
      const page = await this.api.listSessions(this.nextCursor);
      for (const session of page.sessions) this.upsert(session);
      this.nextCursor = page.nextCursor;
    } catch (exc) {
      this.showStatus(`Could not load more sessions: ${exc.message}`);
    }
  }

  showStatus(text) {
    this.status.textContent = text;
    this.status.hidden = !text;
  }

  // -- changes --------------------------------------------------------------------------
  upsert(session) {
    const before = this.sessions.get(session.id);
    this.sessions.set(session.id, { ...session, expired: Boolean(before && before.expired) });
    this.render();
  }

  // Live changes to a session this page shows (a message stored, a join).
  touch(sessionId, changes) {
    const session = this.sessions.get(sessionId);
    if (!session) return;
    Object.assign(session, changes);
    this.render();
  }

  remove(sessionId) {
    if (!this.sessions.delete(sessionId)) return;
    this.render();
  }

  markExpired(sessionId) {
    const session = this.sessions.get(sessionId);
    if (session) session.expired = true;
    this.render();
  }

  get(sessionId) {
    return this.sessions.get(sessionId);
  }

  // Lobby frames: sessions created, deleted or expired anywhere.
  handleFrame(frame) {
    if (frame.type === "session:created" && frame.session) {
      this.upsert(frame.session);
    } else if (frame.type === "session:deleted") {
      this.gone(frame.sessionId, "deleted");
    } else if (frame.type === "session:expired") {
      this.markExpired(frame.sessionId);
      if (frame.sessionId === this.currentId) this.onGone(frame.sessionId, "expired");
    }
  }

  gone(sessionId, why) {
    const session = this.sessions.get(sessionId);
    if (session && session.persistence === "client") forgetHistory(sessionId);
    this.remove(sessionId);
    if (sessionId === this.currentId) this.onGone(sessionId, why);
  }

  open(sessionId) {
    const session = this.sessions.get(sessionId);
    if (!session) return false;
    this.currentId = sessionId;
    this.render();
    this.onOpen(session);
    return true;
  }

  // -- deleting -----------------------------------------------------------------------
  askDelete(sessionId) {
    const session = this.sessions.get(sessionId);
    if (!session) return;
    this.pendingDelete = sessionId;
    $("delete-text").textContent =
      `“${sessionName(session)}” and all its messages will be deleted for everyone. ` +
      "This cannot be undone.";
    $("delete-error").hidden = true;
    $("delete-dialog").showModal();
    $("delete-cancel").focus();
  }

  async confirmDelete() {
    const id = this.pendingDelete;
    if (!id) return;
    const button = $("delete-confirm");
    button.disabled = true;
    try {
      await this.api.deleteSession(id);
      this.pendingDelete = null;
      $("delete-dialog").close();
      this.gone(id, "deleted here");
      $("new-title").focus();
    } catch (exc) {
      if (exc.code === "session_not_found") {
        this.pendingDelete = null;
        $("delete-dialog").close();
        this.gone(id, "deleted");
        return;
      }
      $("delete-error").textContent = `Could not delete it: ${exc.message}`;
      $("delete-error").hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  // -- drawing ------------------------------------------------------------------------
  render() {
    if (!this.loaded) return;
    const now = Date.now();
    const sessions = [...this.sessions.values()].sort(
      (a, b) => Date.parse(b.lastActivity) - Date.parse(a.lastActivity) || a.id.localeCompare(b.id),
    );
    this.showStatus(sessions.length ? "" : "No sessions yet. Create one to start chatting.");
    this.list.setAttribute("aria-busy", "false");
    const focused = document.activeElement && document.activeElement.closest("#session-list li");
    const focusKey = focused ? document.activeElement.dataset.key : null;
    this.list.replaceChildren(...sessions.map((s) => this.item(s, now)));
    if (focusKey) {
      const again = this.list.querySelector(`[data-key="${CSS.escape(focusKey)}"]`);
      if (again) again.focus();
    }
    $("load-more").hidden = !this.nextCursor;
  }

  item(session, now) {
    const li = document.createElement("li");
    li.className = "session-item";
    li.dataset.sessionId = session.id;
    const expired = session.expired || isExpired(session, now);
    if (expired) li.classList.add("expired");

    const open = document.createElement("button");
    open.type = "button";
    open.className = "session-open";
    open.dataset.key = `open:${session.id}`;
    if (session.id === this.currentId) open.setAttribute("aria-current", "true");
    open.addEventListener("click", () => this.open(session.id));

    const name = document.createElement("span");
    name.className = "session-name";
    name.textContent = sessionName(session);

    const badge = document.createElement("span");
    badge.className = `badge mode-${session.persistence}`;
    badge.textContent = modeLabel(session.persistence);
    badge.title = modeWhere(session.persistence);

    const meta = document.createElement("span");
    meta.className = "session-meta";
    const onClient = session.persistence === "client";
    const count = onClient ? countHistory(session.id) : session.messageCount;
    const counted = plural(count, "message") + (onClient ? " here" : "");
    const time = document.createElement("time");
    time.dateTime = session.lastActivity;
    time.textContent = ago(session.lastActivity, now);
    time.title = new Date(session.lastActivity).toLocaleString();
    meta.append(`${counted} · `, time);

    open.append(name, " ", badge, meta);
    if (expired) {
      const mark = document.createElement("span");
      mark.className = "expired-mark";
      mark.textContent = "expired";
      open.append(" ", mark);
    }

    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "session-delete";
    remove.dataset.key = `delete:${session.id}`;
    remove.dataset.delete = session.id;
    remove.setAttribute("aria-label", `Delete session ${sessionName(session)}`);
    remove.title = "Delete";
    remove.textContent = "✕";
    remove.addEventListener("click", () => this.askDelete(session.id));

    li.append(open, remove);
    return li;
  }
}
