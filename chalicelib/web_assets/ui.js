// What every page shares: the notice line above the page and moving to another page.
import { ApiError } from "./api.js";
import { h, replace } from "./dom.js";

export function say(message, kind = "info") {
  const notice = document.getElementById("notice");
  replace(notice, message ? h("p", { class: `notice ${kind}` }, message) : null);
}

export function failure(error) {
  say(error instanceof ApiError ? error.message : String(error), "error");
}

let pending = null;

// Moves to another page; `message` is said there (any older notice is cleared on the way).
export function go(where, message) {
  pending = message || null;
  if (window.location.hash === `#${where}`) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else window.location.hash = where;
}

// Runs `work`, saying what failed; a button stays disabled while it runs so it is not sent twice.
export async function act(button, work) {
  if (button) button.disabled = true;
  try {
    return await work();
  } catch (error) {
    failure(error);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

// The notice a page starts with: what go() was asked to say, or nothing.
export function arrive() {
  say(pending || "");
  pending = null;
}

// A button that does something that cannot be undone asks first: the first press turns it into
// the question (`Really delete x?`), the second does it. True when it is the second press.
export function confirmed(button, question) {
  if (button.dataset.armed === "yes") return true;
  button.dataset.armed = "yes";
  button.textContent = question;
  button.setAttribute("aria-label", question);
  return false;
}
