// The REST API of the server: the response envelope, the token, and the calls the page makes.

const TOKEN_KEY = "chatkeep:token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class Api {
  // askToken(reason) resolves once a new token is stored; requests answered 401 wait for
  // it and are sent again.
  constructor(askToken) {
    this.askToken = askToken;
    this.asking = null;
  }

  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  setToken(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
  }

  forgetToken() {
    sessionStorage.removeItem(TOKEN_KEY);
  }

  async request(method, path, body) {
    for (;;) {
      const sentWith = this.token;
      const response = await this.send(method, path, body, sentWith);
      const payload = await response.json().catch(() => null);
      if (response.ok && payload && payload.success) return payload.data;
      const error = (payload && payload.error) || {};
      const code = error.code || `http_${response.status}`;
      const message = error.message || response.statusText || "the server answered an error";
      if (response.status !== 401) throw new ApiError(response.status, code, message);
      await this.tokenAfter(sentWith, message);
    }
  }

  async send(method, path, body, token) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = `Bearer ${token}`;
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) init.body = JSON.stringify(body);
    try {
      return await fetch(path, init);
    } catch {
      throw new ApiError(0, "unreachable", "the server cannot be reached");
    }
  }

  // One prompt for every request that failed with the same token.
  async tokenAfter(rejected, message) {
    if (this.token !== rejected) return;
    if (!this.asking) {
      const reason = rejected ? `The token was refused: ${message}` : "";
      this.asking = this.askToken(reason).finally(() => {
        this.asking = null;
      });
    }
    await this.asking;
  }

  listSessions(cursor) {
    const query = new URLSearchParams({ includeExpired: "true", limit: "100" });
    if (cursor) query.set("cursor", cursor);
    return this.request("GET", `/api/sessions?${query}`);
  }

  createSession(fields) {
    return this.request("POST", "/api/sessions", fields);
  }

  deleteSession(id) {
    return this.request("DELETE", `/api/sessions/${encodeURIComponent(id)}`);
  }

  settings() {
    return this.request("GET", "/api/settings");
  }

  saveSettings(defaultPersistence) {
    return this.request("PUT", "/api/settings", { defaultPersistence });
  }

  // The modes this server has a store for: the stores /readyz reports (ready or not).
  async modes() {
    const response = await this.send("GET", "/readyz", undefined, null);
    const payload = await response.json().catch(() => null);
    const report = payload && (payload.success ? payload.data : payload.error && payload.error.details);
    if (!report || !report.stores) {
      throw new ApiError(response.status, "not_ready", "the server did not say which modes it has");
    }
    return Object.keys(report.stores);
  }

  socketUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = new URL(`${scheme}//${location.host}/ws`);
    const token = this.token;
    if (token) url.searchParams.set("token", token);
    return url.toString();
  }
}
