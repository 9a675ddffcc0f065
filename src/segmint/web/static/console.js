// segmint console: the visual rule builder.
// The rule is held as its JSON tree (segmint.rules.to_json / from_json). Every edit of the
// builder or of the text is sent, debounced, to /ui/api/preview, which answers with the
// canonical text, the tree, the live size and a sample: so the text view and the builder
// stay in sync both ways through the server's one parser. Nothing here decides membership.
// All text is written with textContent / DOM properties, never as HTML.
"use strict";

(function () {
  const configNode = document.getElementById("builder-config");
  if (!configNode) return;
  const config = JSON.parse(configNode.textContent);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const traits = config.traits; // name -> type
  const DEBOUNCE_MS = 300;

  const OPS = {
    number: ["=", "!=", ">", ">=", "<", "<=", "between", "is null", "is not null"],
    string: ["=", "!=", "in", "not in", "contains", "starts_with", "ends_with",
      "is null", "is not null"],
    boolean: ["is true", "is false", "is null"],
    timestamp: ["within", "before", "after", "is null", "is not null"],
  };
  const opsFor = (type) => OPS[type] || ["=", "!=", "is null", "is not null"];

  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  };
  const select = (options, value, onchange, cls) => {
    const s = el("select", { class: cls || "" });
    for (const o of options) {
      const opt = el("option", {}, o);
      opt.value = o;
      if (o === value) opt.selected = true;
      s.append(opt);
    }
    s.addEventListener("change", () => onchange(s.value));
    return s;
  };
  const input = (value, onchange, attrs) => {
    const i = el("input", attrs || {});
    i.value = value === undefined || value === null ? "" : String(value);
    i.addEventListener("input", () => onchange(i.value));
    return i;
  };

  // -- the model: a group tree whose leaves are conditions (or raw nodes kept as they are)
  const trait = (name) => ({ type: "trait", name });
  const literal = (value, type) =>
    type === "timestamp" ? { type: "literal", value, value_type: "timestamp" } : { type: "literal", value };
  const firstTrait = Object.keys(traits)[0] || "event_count";

  function newCondition() {
    return { type: "compare", op: ">=", left: trait(firstTrait), right: literal(1) };
  }
  function newEvent() {
    return { type: "performed", event: config.events[0] || "", at_least: 1, within: "30 days", where: null };
  }
  function asGroup(node) {
    return node.type === "and" || node.type === "or" ? node : { type: "and", operands: [node] };
  }

  // Read a condition node into {trait, op, value, value2} when the builder knows its shape.
  function readCondition(node) {
    const t = (n) => n && n.type === "trait" ? n.name : null;
    const v = (n) => n && n.type === "literal" ? n.value : undefined;
    if (node.type === "compare" && t(node.left) && node.right.type === "literal") {
      const type = traits[t(node.left)];
      if (type === "boolean" && node.op === "=" && typeof v(node.right) === "boolean")
        return { trait: t(node.left), op: v(node.right) ? "is true" : "is false" };
      if (type === "timestamp" && (node.op === "<" || node.op === ">"))
        return { trait: t(node.left), op: node.op === "<" ? "before" : "after", value: v(node.right) };
      return { trait: t(node.left), op: node.op, value: v(node.right) };
    }
    if (node.type === "is_null" && t(node.operand))
      return { trait: t(node.operand), op: node.negated ? "is not null" : "is null" };
    if (node.type === "in_list" && t(node.operand) && node.items.every((i) => i.type === "literal"))
      return { trait: t(node.operand), op: node.negated ? "not in" : "in",
        value: node.items.map((i) => i.value).join(", ") };
    if (node.type === "between" && t(node.operand) && !node.negated)
      return { trait: t(node.operand), op: "between", value: v(node.low), value2: v(node.high) };
    if (node.type === "string_match" && t(node.operand) && node.needle.type === "literal")
      return { trait: t(node.operand), op: node.func, value: v(node.needle) };
    if (node.type === "within" && t(node.operand))
      return { trait: t(node.operand), op: "within", value: node.duration };
    return null;
  }

  function typed(value, type) {
    if (type === "number") {
      const n = Number(value);
      return value === "" || Number.isNaN(n) ? value : n;
    }
    return value;
  }

  // Build the node for {trait, op, value, value2}.
  function writeCondition(c) {
    const type = traits[c.trait];
    const left = trait(c.trait);
    switch (c.op) {
      case "is null": return { type: "is_null", operand: left, negated: false };
      case "is not null": return { type: "is_null", operand: left, negated: true };
      case "is true": return { type: "compare", op: "=", left, right: literal(true) };
      case "is false": return { type: "compare", op: "=", left, right: literal(false) };
      case "within": return { type: "within", operand: left, duration: c.value || "30 days" };
      case "before": return { type: "compare", op: "<", left, right: literal(c.value || "", "timestamp") };
      case "after": return { type: "compare", op: ">", left, right: literal(c.value || "", "timestamp") };
      case "between": return { type: "between", operand: left, low: literal(typed(c.value ?? "", type)),
        high: literal(typed(c.value2 ?? "", type)), negated: false };
      case "in": case "not in": return { type: "in_list", operand: left, negated: c.op === "not in",
        items: String(c.value ?? "").split(",").map((s) => s.trim()).filter((s) => s).map((s) => literal(typed(s, type))) };
      case "contains": case "starts_with": case "ends_with":
        return { type: "string_match", func: c.op, operand: left, needle: literal(c.value ?? ""), case_insensitive: false };
      default: return { type: "compare", op: c.op, left, right: literal(typed(c.value ?? "", type)) };
    }
  }

  // -- rendering
  let root = { type: "and", operands: [] };

  function renderNode(node, replace, remove) {
    if (node.type === "and" || node.type === "or") return renderGroup(node, replace, remove, false);
    if (node.type === "not") {
      node.operand = asGroup(node.operand); // edited in place, unwrapped when sent
      return renderGroup(node.operand, (n) => { node.operand = n; replace(node); }, remove, true);
    }
    if (node.type === "performed") return renderEvent(node, replace, remove);
    const cond = readCondition(node);
    if (cond) return renderCondition(cond, replace, remove);
    return el("div", { class: "cond raw" }, el("code", {}, node.__text || "(" + node.type + " condition)"),
      el("button", { type: "button", class: "remove", onclick: remove, title: "Remove" }, "×"));
  }

  function renderGroup(group, replace, remove, negated) {
    const box = el("div", { class: "group" + (negated ? " negated" : "") });
    const head = el("div", { class: "group-head" });
    if (negated) head.append(el("span", { class: "not" }, "NOT"));
    head.append(select(["and", "or"], group.type, (v) => { group.type = v; changed(); }, "connective"));
    head.append(el("button", { type: "button", class: "add-condition", onclick: () => { group.operands.push(newCondition()); changed(true); } }, "+ trait condition"));
    head.append(el("button", { type: "button", class: "add-event", onclick: () => { group.operands.push(newEvent()); changed(true); } }, "+ event condition"));
    head.append(el("button", { type: "button", class: "add-group", onclick: () => { group.operands.push({ type: "or", operands: [newCondition()] }); changed(true); } }, "+ group"));
    head.append(el("button", { type: "button", class: "add-not", onclick: () => { group.operands.push({ type: "not", operand: { type: "and", operands: [newCondition()] } }); changed(true); } }, "+ NOT group"));
    if (remove) head.append(el("button", { type: "button", class: "remove", onclick: remove, title: "Remove group" }, "×"));
    box.append(head);
    group.operands.forEach((child, i) => {
      box.append(renderNode(child,
        (n) => { group.operands[i] = n; changed(); },
        () => { group.operands.splice(i, 1); changed(true); }));
    });
    if (group.operands.length === 0) box.append(el("p", { class: "muted" }, "Add a condition."));
    return box;
  }

  function renderCondition(cond, replace, remove) {
    const row = el("div", { class: "cond" });
    const update = (rerender) => { replace(writeCondition(cond)); if (rerender) draw(); };
    const type = traits[cond.trait] || "dynamic";
    row.append(select(Object.keys(traits), cond.trait, (v) => {
      cond.trait = v;
      if (!opsFor(traits[v]).includes(cond.op)) cond.op = opsFor(traits[v])[0];
      update(true);
    }, "trait"));
    row.append(select(opsFor(type), cond.op, (v) => { cond.op = v; update(true); }, "op"));
    const needsValue = !["is null", "is not null", "is true", "is false"].includes(cond.op);
    if (needsValue) {
      const hint = cond.op === "within" ? "30 days" : cond.op === "in" || cond.op === "not in" ? "a, b, c"
        : type === "timestamp" ? "2026-01-01T00:00:00Z" : type === "number" ? "0" : "value";
      row.append(input(cond.value, (v) => { cond.value = v; update(false); },
        { class: "value", placeholder: hint, type: type === "number" && cond.op !== "in" && cond.op !== "not in" ? "number" : "text" }));
      if (cond.op === "between")
        row.append(" and ", input(cond.value2, (v) => { cond.value2 = v; update(false); }, { class: "value2", type: "number" }));
    }
    row.append(el("button", { type: "button", class: "remove", onclick: remove, title: "Remove" }, "×"));
    return row;
  }

  function renderEvent(node, replace, remove) {
    const row = el("div", { class: "cond event" });
    row.append(el("span", {}, "performed "));
    const events = config.events.includes(node.event) || !node.event ? config.events : [node.event, ...config.events];
    row.append(select(events, node.event, (v) => { node.event = v; replace(node); }, "event"));
    row.append(" at least ", input(node.at_least, (v) => { node.at_least = Math.max(1, parseInt(v, 10) || 1); replace(node); },
      { class: "at-least", type: "number", min: "1" }), " times");
    row.append(" within ", input(node.within, (v) => { node.within = v.trim() || null; replace(node); },
      { class: "within", placeholder: "ever" }));
    if (node.where) row.append(el("span", { class: "muted" }, " (with a filter)"));
    row.append(el("button", { type: "button", class: "remove", onclick: remove, title: "Remove" }, "×"));
    return row;
  }

  const builder = document.getElementById("builder");
  function draw() {
    builder.replaceChildren(renderGroup(root, (n) => { root = n; }, null, false));
  }

  // -- the tree sent to the server: groups of one unwrap, empty groups drop out
  function simplify(node) {
    if (node.type === "and" || node.type === "or") {
      const kids = node.operands.map(simplify).filter((n) => n !== null);
      if (kids.length === 0) return null;
      return kids.length === 1 ? kids[0] : { type: node.type, operands: kids };
    }
    if (node.type === "not") {
      const inner = simplify(node.operand);
      return inner === null ? null : { type: "not", operand: inner };
    }
    return JSON.parse(JSON.stringify(node, (k, v) => (k === "__text" ? undefined : v)));
  }

  // -- talking to the server
  const text = document.getElementById("rule-text");
  const sizeOut = document.getElementById("live-size");
  const state = document.getElementById("live-state");
  const errorOut = document.getElementById("rule-error");
  const sample = document.getElementById("sample");
  let timer = null;
  let asked = 0;

  async function post(url, body) {
    const r = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    const data = await r.json();
    if (!r.ok) throw new Error(data.error ? data.error.message : r.statusText);
    return data;
  }

  function schedule(body, fromText) {
    clearTimeout(timer);
    state.textContent = "updating…";
    timer = setTimeout(() => preview(body, fromText), DEBOUNCE_MS);
  }

  async function preview(body, fromText) {
    const mine = ++asked;
    try {
      const got = await post("/ui/api/preview", body);
      if (mine !== asked) return; // a newer edit is on its way
      errorOut.hidden = true;
      sizeOut.textContent = String(got.size);
      sizeOut.dataset.rule = got.rule;
      state.textContent = "";
      if (!fromText || document.activeElement !== text) text.value = got.rule;
      if (fromText) { root = asGroup(got.tree); draw(); }
      sample.replaceChildren(...got.sample.map((id) =>
        el("li", {}, el("a", { href: "/ui/profiles/" + encodeURIComponent(id) }, id))));
    } catch (err) {
      if (mine !== asked) return;
      errorOut.hidden = false;
      errorOut.textContent = err.message;
      state.textContent = "the rule has a problem";
    }
  }

  function changed(rerender) {
    if (rerender) draw();
    const tree = simplify(root);
    if (tree === null) {
      sizeOut.textContent = "–";
      state.textContent = "add a condition";
      text.value = "";
      return;
    }
    schedule({ tree }, false);
  }

  text.addEventListener("input", () => {
    if (text.value.trim()) schedule({ rule: text.value }, true);
  });

  const saveButton = document.getElementById("save");
  if (saveButton) saveButton.addEventListener("click", async () => {
    const out = document.getElementById("save-result");
    const tree = simplify(root);
    const name = document.getElementById("seg-name").value.trim();
    const seg = config.segment || {};
    const body = {
      name, tree, version: config.version,
      description: document.getElementById("seg-description").value.trim() || null,
      tags: seg.tags || null, group: seg.group || null, priority: seg.priority || null,
      parent: seg.parent || null,
    };
    out.className = "";
    try {
      const saved = await post("/ui/api/segments?create=" + (config.segment ? "false" : "true"), body);
      config.version = saved.version;
      config.segment = saved;
      document.getElementById("seg-name").readOnly = true;
      out.replaceChildren("Saved ", el("a", { href: "/ui/segments/" + encodeURIComponent(name), id: "saved-link" }, name),
        " to segmint.yaml.");
      out.className = "saved";
    } catch (err) {
      out.textContent = err.message;
      out.className = "error";
    }
  });

  // -- start: an existing segment's tree, or one condition
  if (config.segment && config.segment.tree) {
    root = asGroup(config.segment.tree);
    text.value = config.segment.rule;
  } else {
    root = { type: "and", operands: [newCondition()] };
  }
  draw();
  changed();
})();
