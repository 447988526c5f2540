// Words and times as the page shows them.

export const MODE_ORDER = ["durable", "redis", "client", "none"];

export const MODES = {
  durable: { label: "durable", where: "stored on the server; survives restarts" },
  redis: { label: "redis", where: "stored in Redis on the server" },
  client: { label: "client", where: "history kept in this browser only" },
  none: { label: "none", where: "in server memory only; lost when it restarts" },
};

export function modeLabel(mode) {
  return (MODES[mode] && MODES[mode].label) || mode;
}

export function modeWhere(mode) {
  return (MODES[mode] && MODES[mode].where) || "";
}

export function sortModes(modes) {
  const rank = (m) => (MODE_ORDER.includes(m) ? MODE_ORDER.indexOf(m) : MODE_ORDER.length);
  return [...modes].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

export function sessionName(session) {
  const title = session.metadata && session.metadata.title;
  return typeof title === "string" && title.trim() ? title.trim() : session.id;
}

export function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

export function ago(iso, now = Date.now()) {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "";
  const seconds = Math.max(0, Math.round((now - then) / 1000));
  if (seconds < 45) return "just now";
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 24) return plural(hours, "hour") + " ago";
  return new Date(then).toLocaleDateString();
}

export function clockTime(iso) {
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return "";
  return new Date(at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function isExpired(session, now = Date.now()) {
  return Boolean(session.expiresAt) && Date.parse(session.expiresAt) <= now;
}

export function contentText(content) {
  return typeof content === "string" ? content : JSON.stringify(content, null, 2);
}
