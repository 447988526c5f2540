// The page: wires the API, the WebSocket, the session panel, the chat view, the settings
// and the token prompt together.

import { Api } from "./api.js";
import { ChatView } from "./chat.js";
import { sortModes } from "./format.js";
import { SessionPanel } from "./sessions.js";
import { SettingsView } from "./settings.js";
import { Socket } from "./socket.js";
import { TokenPrompt } from "./token.js";

const $ = (id) => document.getElementById(id);

const GONE = {
  deleted: "This session was deleted.",
  "deleted here": "The session was deleted.",
  missing:
    "This session does not exist any more (a session kept in server memory ends when the " +
    "server restarts).",
};

const prompt = new TokenPrompt();
const api = new Api(async (reason) => {
  const token = await prompt.ask(reason);
  api.setToken(token);
  $("forget-token").hidden = false;
  if (socket.state !== "idle") socket.restart();
});
const socket = new Socket(() => api.socketUrl());
const chat = new ChatView(socket, {
  onActivity: (sessionId, changes) => panel.touch(sessionId, changes),
  onGone: (sessionId, why) => gone(sessionId, why),
});
const panel = new SessionPanel(api, {
  onOpen: (session) => {
    chat.open(session);
    history.replaceState(null, "", `#session=${encodeURIComponent(session.id)}`);
  },
  onGone: (sessionId, why) => gone(sessionId, why),
});
const settings = new SettingsView(api, { onDefault: (mode) => panel.setDefaultMode(mode) });

function gone(sessionId, why) {
  if (!chat.session || chat.session.id !== sessionId) return;
  if (why === "expired") {
    panel.markExpired(sessionId);
    chat.setWritable(false);
    chat.notice("This session has expired: it takes no more messages.");
    return;
  }
  panel.remove(sessionId);
  chat.close(GONE[why] || GONE.deleted);
  history.replaceState(null, "", location.pathname);
}

// -- the connection indicator ----------------------------------------------------------
function showState({ state, retryIn }) {
  $("connection").dataset.state = state;
  const label = {
    idle: "Not connected",
    connecting: "Connecting…",
    open: "Connected",
    waiting: `Disconnected; trying again in ${Math.ceil((retryIn || 0) / 1000)} s`,
  }[state];
  $("connection-label").textContent = label;
  if (state === "waiting") chat.disconnected();
  showHeartbeat();
}

function showHeartbeat() {
  const beat = $("heartbeat");
  if (socket.state !== "open" || !socket.lastPong) {
    beat.textContent = "";
    return;
  }
  const seconds = Math.round((Date.now() - socket.lastPong) / 1000);
  beat.textContent = `heartbeat ${seconds} s ago`;
}

// -- frames: the lobby's (sessions created, deleted, expired anywhere) go to the panel --
function onFrame(frame) {
  if (frame.type.startsWith("session:")) panel.handleFrame(frame);
  chat.handleFrame(frame);
}

socket.addEventListener("state", (event) => showState(event.detail));
socket.addEventListener("pong", showHeartbeat);
socket.addEventListener("frame", (event) => onFrame(event.detail));
let openedBefore = false;
socket.addEventListener("open", () => {
  socket.send({ type: "sessions:watch" });
  if (openedBefore) panel.refresh(); // what changed while the connection was down
  openedBefore = true;
  chat.reconnected();
});
setInterval(showHeartbeat, 5000);
window.addEventListener("focus", () => {
  if (panel.loaded) panel.refresh();
});

// -- start ----------------------------------------------------------------------------
function sessionInAddress() {
  const match = /^#session=(.+)$/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

function openFromAddress() {
  const id = sessionInAddress();
  if (!id || (chat.session && chat.session.id === id)) return;
  if (!panel.open(id)) chat.close(GONE.missing);
}

async function start() {
  $("forget-token").hidden = !api.token;
  $("forget-token").addEventListener("click", () => {
    api.forgetToken();
    location.reload();
  });
  let defaultMode = null;
  try {
    defaultMode = await settings.load();
  } catch (exc) {
    $("create-error").textContent = `Could not read the settings: ${exc.message}`;
    $("create-error").hidden = false;
  }
  let modes;
  try {
    modes = sortModes(await api.modes());
  } catch {
    modes = defaultMode ? [defaultMode] : [];
  }
  settings.setModes(modes);
  panel.setModes(modes, defaultMode);
  await panel.refresh();
  socket.start();
  openFromAddress();
  window.addEventListener("hashchange", openFromAddress);
}

start();
