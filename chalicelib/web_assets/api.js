// The OpCenter's public /v1 API, as the float CLI calls it: a bearer token from POST /v1/login,
// JSON in and out, and errors that carry the API's own message.

const TOKEN = "openfloat.token";
const USER = "openfloat.user";

export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN); },
  get user() {
    const text = sessionStorage.getItem(USER);
    return text ? JSON.parse(text) : null;
  },
  save(login) {
    sessionStorage.setItem(TOKEN, login.token);
    sessionStorage.setItem(USER, JSON.stringify({ username: login.username, role: login.role }));
  },
  clear() {
    sessionStorage.removeItem(TOKEN);
    sessionStorage.removeItem(USER);
  },
};

export function path(template, ...parts) {
  let index = 0;
  return template.replace(/\{\}/g, () => encodeURIComponent(parts[index++]));
}

function withQuery(url, query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") params.set(key, value);
  }
  const text = params.toString();
  return text ? `${url}?${text}` : url;
}

async function send(method, url, body) {
  const headers = {};
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url.replace(/^\//, ""), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiError(0, `the OpCenter cannot be reached (${error.message})`);
  }
  if (response.status === 401 && session.token) {
    session.clear();
    window.dispatchEvent(new CustomEvent("openfloat:logged-out"));
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    let field;
    try {
      const problem = await response.json();
      message = problem.message || message;
      field = problem.field;
    } catch (ignored) { /* not JSON: keep the status line */ }
    throw new ApiError(response.status, message, field);
  }
  return response;
}

export async function api(method, url, body, query) {
  const response = await send(method, withQuery(url, query), body);
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

export async function apiText(url, query) {
  const response = await send("GET", withQuery(url, query));
  return { text: await response.text(), headers: response.headers };
}

// Every page of a listing, following nextToken (the CLI's `float list` does the same).
export async function allPages(url, query = {}) {
  const items = [];
  let token;
  do {
    const page = await api("GET", url, undefined, { ...query, limit: 500, nextToken: token });
    items.push(...page.items);
    token = page.nextToken;
  } while (token);
  return items;
}
