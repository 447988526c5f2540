// Asking for an access token when the server answers 401; the token is kept for this tab
// (sessionStorage) by the API.

const $ = (id) => document.getElementById(id);

export class TokenPrompt {
  constructor() {
    this.waiting = null;
    $("token-dialog").addEventListener("cancel", (event) => event.preventDefault());
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token-input").value.trim();
      if (!token || !this.waiting) return;
      const done = this.waiting;
      this.waiting = null;
      $("token-input").value = "";
      $("token-dialog").close();
      done(token);
    });
  }

  // Resolves with the token the user gives.
  ask(reason) {
    const error = $("token-error");
    error.textContent = reason;
    error.hidden = !reason;
    if (!$("token-dialog").open) $("token-dialog").showModal();
    $("token-input").focus();
    return new Promise((resolve) => {
      this.waiting = resolve;
    });
  }
}
