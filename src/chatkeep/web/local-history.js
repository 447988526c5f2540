// The history of `client` sessions, kept in this browser's localStorage: the server keeps
// the session record and relays live messages, but stores none of them.
//
// One key per session, "chatkeep:history:<session id>", holding a JSON array of messages
// ({id, role, content, createdAt}) in the order they arrived, at most the session's
// window (maxMessages) of them.

const PREFIX = "chatkeep:history:";

export function historyKey(sessionId) {
  return PREFIX + sessionId;
}

export function loadHistory(sessionId) {
  const text = localStorage.getItem(historyKey(sessionId));
  if (!text) return [];
  try {
    const stored = JSON.parse(text);
    return Array.isArray(stored) ? stored.filter((m) => m && typeof m.id === "string") : [];
  } catch {
    return [];
  }
}

// Add a message (once: a known id is not added again). Returns false when the browser
// refused to store it (its storage is full or disabled).
export function keepMessage(sessionId, message, maxMessages) {
  const history = loadHistory(sessionId);
  if (history.some((m) => m.id === message.id)) return true;
  history.push({
    id: message.id,
    role: message.role,
    content: message.content,
    createdAt: message.createdAt,
  });
  const kept = maxMessages > 0 ? history.slice(-maxMessages) : history;
  try {
    localStorage.setItem(historyKey(sessionId), JSON.stringify(kept));
    return true;
  } catch {
    return false;
  }
}

export function forgetHistory(sessionId) {
  localStorage.removeItem(historyKey(sessionId));
}

export function countHistory(sessionId) {
  return loadHistory(sessionId).length;
}
