// Charts as SVG drawn from numbers: a line chart of ratios over time (CPU and memory use) and
// a bar chart of amounts by group (spend by month). Every point and bar has a text title.
const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

const WIDTH = 640;
const HEIGHT = 220;
const PAD = { left: 44, right: 12, top: 12, bottom: 28 };

// series: [{ name, cls, points: [{ t: Date, v: 0..1+, label }] }]
export function lineChart(title, series) {
  const root = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "chart", role: "img", "aria-label": title });
  const all = series.flatMap((line) => line.points);
  if (!all.length) return root;
  const t0 = Math.min(...all.map((p) => p.t.getTime()));
  const t1 = Math.max(...all.map((p) => p.t.getTime()), t0 + 1000);
  const top = Math.max(1, ...all.map((p) => p.v));
  const x = (t) => PAD.left + ((t.getTime() - t0) / (t1 - t0)) * (WIDTH - PAD.left - PAD.right);
  const y = (v) => HEIGHT - PAD.bottom - (v / top) * (HEIGHT - PAD.top - PAD.bottom);
  for (const tick of [0, 0.25, 0.5, 0.75, 1].map((f) => f * top)) {
    root.append(svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(tick), y2: y(tick), class: "grid" }));
    root.append(svg("text", { x: PAD.left - 6, y: y(tick) + 4, class: "axis", "text-anchor": "end" }, `${Math.round(tick * 100)}%`));
  }
  root.append(svg("text", { x: PAD.left, y: HEIGHT - 8, class: "axis" }, new Date(t0).toLocaleTimeString()));
  root.append(svg("text", { x: WIDTH - PAD.right, y: HEIGHT - 8, class: "axis", "text-anchor": "end" }, new Date(t1).toLocaleTimeString()));
  for (const line of series) {
    if (!line.points.length) continue;
    const group = svg("g", { class: `series ${line.cls}`, "data-series": line.name, "data-points": line.points.length });
    group.append(svg("polyline", { points: line.points.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ") }));
    for (const p of line.points) {
      const dot = svg("circle", { cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 2.5, class: "point" });
      dot.append(svg("title", {}, p.label));
      group.append(dot);
    }
    root.append(group);
  }
  return root;
}

// groups: [{ name, bars: [{ name, cls, value, label }] }]
export function barChart(title, groups) {
  const root = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "chart", role: "img", "aria-label": title });
  const values = groups.flatMap((group) => group.bars.map((bar) => bar.value));
  const top = Math.max(...values, 0) || 1;
  const slot = (WIDTH - PAD.left - PAD.right) / Math.max(groups.length, 1);
  const y = (v) => HEIGHT - PAD.bottom - (v / top) * (HEIGHT - PAD.top - PAD.bottom);
  for (const tick of [0, 0.5, 1].map((f) => f * top)) {
    root.append(svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(tick), y2: y(tick), class: "grid" }));
    root.append(svg("text", { x: PAD.left - 6, y: y(tick) + 4, class: "axis", "text-anchor": "end" }, tick.toPrecision(2)));
  }
  groups.forEach((group, index) => {
    const left = PAD.left + index * slot;
    const width = (slot * 0.8) / Math.max(group.bars.length, 1);
    group.bars.forEach((bar, at) => {
      const rect = svg("rect", { x: (left + slot * 0.1 + at * width).toFixed(1), y: y(bar.value).toFixed(1),
        width: Math.max(width - 2, 1).toFixed(1), height: (HEIGHT - PAD.bottom - y(bar.value)).toFixed(1), class: `bar ${bar.cls}` });
      rect.append(svg("title", {}, bar.label));
      root.append(rect);
    });
    root.append(svg("text", { x: left + slot / 2, y: HEIGHT - 8, class: "axis", "text-anchor": "middle" }, group.name));
  });
  return root;
}

export function legend(items) {
  const list = document.createElement("ul");
  list.className = "legend";
  for (const [cls, name] of items) {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = `swatch ${cls}`;
    item.append(swatch, name);
    list.append(item);
  }
  return list;
}
