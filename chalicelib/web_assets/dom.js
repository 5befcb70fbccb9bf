// Small helpers to build the page. Every piece of data goes in as text (never as markup), so
// whatever a job name, a log or a reason holds is shown, not run.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "value") node.value = value;
    else if (key === "checked") node.checked = Boolean(value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

let serial = 0;
export function uid(prefix) {
  serial += 1;
  return `${prefix}-${serial}`;
}

// A labelled control: the label names it for screen readers and for tests alike.
export function field(label, control, hint) {
  if (!control.id) control.id = uid("f");
  const hintNode = hint ? h("small", { class: "hint", id: `${control.id}-hint` }, hint) : null;
  if (hintNode) control.setAttribute("aria-describedby", hintNode.id);
  const kind = control.type === "checkbox" ? "field check" : "field";
  return h("div", { class: kind }, h("label", { for: control.id }, label), control, hintNode);
}

export function table(caption, headings, rows, empty = "None.") {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("div", { class: "scroll" },
    h("table", {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headings.map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell)))))));
}

export function time(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export function bytes(count) {
  if (count === null || count === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(count);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

export function seconds(value) {
  return value === null || value === undefined ? "" : `${Number(value).toFixed(1)} s`;
}

export function usd(text) {
  return text === null || text === undefined ? "" : String(text); // the API says "… USD"
}

export function statusBadge(status) {
  return h("span", { class: `status s-${status}` }, status);
}
