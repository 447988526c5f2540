// One WebSocket to the server that comes back by itself: reconnects with exponential
// backoff (and jitter) and keeps a heartbeat, closing a connection that stops answering.
//
// Events: "state" ({state, retryIn}), "open", "frame" (a parsed server frame), "pong".

const CONNECT_WITHIN_MS = 10000;
const HEARTBEAT_MS = 15000;
const PONG_WITHIN_MS = 10000;
const FIRST_RETRY_MS = 400;
const LONGEST_RETRY_MS = 5000;

export class Socket extends EventTarget {
  constructor(url) {
    super();
    this.url = url; // a function: the URL to use at each attempt
    this.ws = null;
    this.state = "idle";
    this.attempt = 0;
    this.retryTimer = null;
    this.beatTimer = null;
    this.pongTimer = null;
    this.lastPong = null;
    window.addEventListener("online", () => this.reconnectNow());
  }

  start() {
    if (this.ws || this.retryTimer) return;
    this.connect();
  }

  connect() {
    this.retryTimer = null;
    this.setState("connecting");
    const ws = new WebSocket(this.url());
    this.ws = ws;
    // an attempt that neither opens nor fails in time (a network that drops packets)
    this.beatTimer = setTimeout(() => {
      if (this.ws === ws && ws.readyState === WebSocket.CONNECTING) this.dropped();
    }, CONNECT_WITHIN_MS);
    ws.addEventListener("open", () => {
      if (this.ws !== ws) return;
      this.setState("open");
      this.beat(0);
      this.dispatchEvent(new Event("open"));
    });
    ws.addEventListener("message", (event) => {
      if (this.ws !== ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame.type === "pong") this.gotPong();
      this.dispatchEvent(new CustomEvent("frame", { detail: frame }));
    });
    ws.addEventListener("close", () => {
      if (this.ws === ws) this.dropped();
    });
  }

  // The connection is gone (closed by either side, or silent): try again later.
  dropped() {
    const ws = this.ws;
    this.ws = null;
    clearTimeout(this.beatTimer);
    clearTimeout(this.pongTimer);
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close();
    const base = Math.min(LONGEST_RETRY_MS, FIRST_RETRY_MS * 2 ** this.attempt);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempt += 1;
    this.setState("waiting", delay);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  reconnectNow() {
    if (!this.retryTimer) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  // Close the current connection and open a new one now (a new token, say).
  restart() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const ws = this.ws;
    this.ws = null;
    clearTimeout(this.beatTimer);
    clearTimeout(this.pongTimer);
    if (ws) ws.close();
    this.attempt = 0;
    this.connect();
  }

  send(frame) {
    if (!this.ws || this.state !== "open") return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  // A ping after `delay`; a connection that does not answer it in time is dropped.
  beat(delay = HEARTBEAT_MS) {
    clearTimeout(this.beatTimer);
    this.beatTimer = setTimeout(() => {
      if (!this.send({ type: "ping" })) return;
      this.pongTimer = setTimeout(() => this.dropped(), PONG_WITHIN_MS);
    }, delay);
  }

  // An answered ping: the connection works, so the backoff starts over.
  gotPong() {
    this.attempt = 0;
    clearTimeout(this.pongTimer);
    this.lastPong = Date.now();
    this.dispatchEvent(new Event("pong"));
    this.beat();
  }

  setState(state, retryIn = null) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, retryIn } }));
  }
}
