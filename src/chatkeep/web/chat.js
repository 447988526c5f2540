// The chat view of one session: its history on join, sending (confirmed by the server's
// ack, or failed with a retry), live messages from the other members, and resuming after
// a dropped connection from the last seq it has, without showing anything twice.

import { keepMessage, loadHistory } from "./local-history.js";
import { clockTime, contentText, modeLabel, modeWhere, sessionName } from "./format.js";

const ACK_WITHIN_MS = 10000;

// A message id the server accepts (letters, digits, "-"), unique enough to be the
// idempotency key of a send and of its retries.
function newClientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "w-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
const $ = (id) => document.getElementById(id);

export class ChatView {
  constructor(socket, { onActivity, onGone }) {
    this.socket = socket;
    this.onActivity = onActivity; // (sessionId, changes) => void
    this.onGone = onGone; // (sessionId, why) => void
    this.session = null;
    this.list = $("messages");
    this.input = $("composer-input");
    this.reset();
    this.bind();
  }

  reset() {
    for (const timer of this.ackTimers?.values() || []) clearTimeout(timer);
    this.messages = new Map(); // id -> message
    this.arrivals = 0;
    this.lastSeq = 0;
    this.joined = false;
    this.historyLoaded = false;
    this.ackTimers = new Map();
    this.list.replaceChildren();
  }

  bind() {
    $("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      }
    });
  }

  // -- opening and leaving ------------------------------------------------------------
  open(session) {
    if (this.session && this.joined && this.session.id !== session.id) {
      this.socket.send({ type: "session:leave", sessionId: this.session.id });
    }
    this.session = { ...session };
    this.reset();
    this.list.setAttribute("aria-busy", "true");
    $("chat-empty").hidden = true;
    this.notice("");
    this.drawHeader();
    this.setWritable(false);
    this.join();
    $("chat-title").focus();
  }

  close(text) {
    if (this.session && this.joined) {
      this.socket.send({ type: "session:leave", sessionId: this.session.id });
    }
    this.session = null;
    this.reset();
    $("chat-title").textContent = "No session open";
    $("chat-meta").hidden = true;
    $("chat-empty").hidden = false;
    this.setWritable(false);
    this.notice(text || "");
  }

  join() {
    if (!this.session) return;
    const frame = { type: "session:join", sessionId: this.session.id };
    if (this.historyLoaded && this.onServer()) frame.lastSeq = this.lastSeq;
    this.socket.send(frame);
  }

  // The connection is back: join again, from the last seq this view has.
  reconnected() {
    this.joined = false;
    this.join();
  }

  // The connection dropped: what was not acknowledged yet is marked failed.
  disconnected() {
    this.joined = false;
    for (const message of this.messages.values()) {
      if (message.status === "sending") this.fail(message, "the connection was lost");
    }
  }

  onServer() {
    return this.session && this.session.persistence !== "client";
  }

  // -- frames -------------------------------------------------------------------------
  handleFrame(frame) {
    if (!this.session || frame.sessionId !== this.session.id) return;
    switch (frame.type) {
      case "session:loaded":
      case "session:created":
        this.session = { ...frame.session };
        this.joined = true;
        this.drawHeader();
        this.onActivity(this.session.id, frame.session);
        break;
      case "messages:history":
        this.history(frame);
        break;
      case "message:ack":
        this.acked(frame);
        break;
      case "message:received":
        this.received(frame.message);
        break;
      case "error":
        this.error(frame);
        break;
      default:
        break;
    }
  }

  history(frame) {
    const first = !this.historyLoaded;
    const messages = frame.historyOnClient ? loadHistory(this.session.id) : frame.messages;
    for (const message of messages) this.upsert({ ...message, status: "stored" });
    this.historyLoaded = true;
    this.list.setAttribute("aria-busy", "false");
    this.setWritable(true);
    if (first) this.scrollDown();
  }

  acked(frame) {
    const message = this.messages.get(frame.clientId);
    if (!message) return;
    clearTimeout(this.ackTimers.get(message.id));
    this.ackTimers.delete(message.id);
    message.seq = frame.seq;
    message.status = "stored";
    message.error = null;
    this.afterStored(message);
    this.draw(message);
  }

  received(message) {
    const isNew = !this.messages.has(message.id);
    const shown = this.upsert({ ...message, status: "stored" });
    if (!isNew) return;
    this.afterStored(shown);
    this.scrollDown();
  }

  afterStored(message) {
    if (message.seq > this.lastSeq) this.lastSeq = message.seq;
    const session = this.session;
    if (session.persistence === "client") {
      if (!keepMessage(session.id, message, session.maxMessages)) {
        this.notice("This browser refused to keep the message: its storage is full or off.");
      }
    } else {
      session.messageCount = Math.min(session.messageCount + 1, session.maxMessages);
    }
    session.lastActivity = new Date().toISOString();
    this.onActivity(session.id, {
      messageCount: session.messageCount,
      lastActivity: session.lastActivity,
    });
  }

  error(frame) {
    const message = frame.clientId && this.messages.get(frame.clientId);
    if (message) {
      clearTimeout(this.ackTimers.get(message.id));
      this.fail(message, frame.message);
      return;
    }
    if (frame.code === "session_not_found" || frame.code === "session_expired") {
      this.onGone(frame.sessionId, frame.code === "session_expired" ? "expired" : "missing");
      return;
    }
    this.notice(`The server refused: ${frame.message}`);
  }

  // -- sending ------------------------------------------------------------------------
  submit() {
    const text = this.input.value;
    if (!text.trim() || !this.session || this.input.disabled) return;
    this.input.value = "";
    const message = this.upsert({
      id: newClientId(),
      role: "user",
      content: text,
      createdAt: new Date().toISOString(),
      seq: null,
      status: "sending",
      mine: true,
    });
    this.transmit(message);
    this.scrollDown();
  }

  retry(id) {
    const message = this.messages.get(id);
    if (!message || message.status !== "failed") return;
    message.status = "sending";
    message.error = null;
    this.draw(message);
    this.transmit(message);
  }

  transmit(message) {
    const frame = {
      type: "message:send",
      sessionId: this.session.id,
      content: message.content,
      role: message.role,
      clientId: message.id,
    };
    if (!this.joined || !this.socket.send(frame)) {
      this.fail(message, "not connected to the server");
      return;
    }
    this.ackTimers.set(
      message.id,
      setTimeout(() => this.fail(message, "the server did not confirm it in time"), ACK_WITHIN_MS),
    );
  }

  fail(message, why) {
    if (message.status !== "sending") return;
    this.ackTimers.delete(message.id);
    message.status = "failed";
    message.error = why;
    this.draw(message);
  }

  // -- drawing ------------------------------------------------------------------------
  upsert(message) {
    const known = this.messages.get(message.id);
    if (known) {
      if (known.status !== "stored" && message.status === "stored") {
        known.status = "stored";
        known.seq = message.seq;
        known.error = null;
        if (message.seq > this.lastSeq) this.lastSeq = message.seq;
        this.draw(known);
      }
      return known;
    }
    const added = { ...message, arrival: this.arrivals++ };
    if (added.seq > this.lastSeq) this.lastSeq = added.seq;
    this.messages.set(added.id, added);
    this.draw(added);
    return added;
  }

  // Messages stored by the server in seq order; the ones not yet stored (and those of a
  // client session, which the server never numbers) after them, in the order they came.
  static order(message) {
    return message.seq > 0 ? [0, message.seq] : [1, message.arrival];
  }

  draw(message) {
    const old = this.list.querySelector(`li[data-id="${CSS.escape(message.id)}"]`);
    const li = this.element(message);
    if (old) {
      old.replaceWith(li);
      if (old.dataset.order === li.dataset.order) return;
      li.remove();
    }
    const [group, key] = ChatView.order(message);
    const after = [...this.list.children].find((other) => {
      const [g, k] = other.dataset.order.split(":").map(Number);
      return g > group || (g === group && k > key);
    });
    this.list.insertBefore(li, after || null);
  }

  element(message) {
    const li = document.createElement("li");
    li.className = `message role-${message.role}${message.mine ? " mine" : ""}`;
    li.dataset.id = message.id;
    li.dataset.status = message.status;
    li.dataset.order = ChatView.order(message).join(":");
    if (message.seq > 0) li.dataset.seq = String(message.seq);

    const head = document.createElement("div");
    head.className = "message-head";
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = message.mine ? `${message.role} (you)` : message.role;
    const time = document.createElement("time");
    time.dateTime = message.createdAt || "";
    time.textContent = clockTime(message.createdAt);
    head.append(who, " ", time);

    const body = document.createElement(typeof message.content === "string" ? "p" : "pre");
    body.className = "message-body";
    body.textContent = contentText(message.content);
    li.append(head, body);

    if (message.mine) li.append(this.state(message));
    return li;
  }

  state(message) {
    const state = document.createElement("div");
    state.className = "message-state";
    if (message.status === "sending") state.textContent = "Sending…";
    if (message.status === "stored") state.textContent = "Sent ✓";
    if (message.status === "failed") {
      state.textContent = `Not sent: ${message.error}. `;
      const retry = document.createElement("button");
      retry.type = "button";
      retry.className = "retry";
      retry.textContent = "Retry";
      retry.addEventListener("click", () => this.retry(message.id));
      state.append(retry);
    }
    return state;
  }

  drawHeader() {
    const session = this.session;
    $("chat-title").textContent = sessionName(session);
    $("chat-meta").hidden = false;
    const badge = $("chat-persistence");
    badge.className = `badge mode-${session.persistence}`;
    badge.textContent = `Persistence: ${modeLabel(session.persistence)}`;
    $("chat-where").textContent = `— ${modeWhere(session.persistence)}`;
  }

  setWritable(on) {
    this.input.disabled = !on;
    $("send").disabled = !on;
  }

  notice(text) {
    const notice = $("chat-notice");
    notice.textContent = text;
    notice.hidden = !text;
  }

  scrollDown() {
    this.list.scrollTop = this.list.scrollHeight;
  }
}
