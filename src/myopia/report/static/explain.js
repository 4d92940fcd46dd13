// explain.html: draws every prompt of the embedded explain.json as coloured tokens, a strip
// chart of the per-token gap and the future-gradient share, and a detail panel for the
// selected token. No network, no libraries: the page is one file.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("explain-data").textContent);
  var ROLES = ["vanilla", "myopic"];
  var label = { vanilla: data.models.vanilla.label, myopic: data.models.myopic.label };
  var scale = data.view.gap_scale;
  // diverging, colour-blind safe (PuOr ends), white at zero gap
  var NEG = [94, 60, 153], MID = [247, 247, 247], POS = [230, 97, 1], NONE = [255, 255, 255];

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "html") e.innerHTML = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) { if (c) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function num(x, d) { return x === null || x === undefined ? "–" : x.toFixed(d === undefined ? 3 : d); }
  function signed(x, d) { return x === null || x === undefined ? "–" : (x >= 0 ? "+" : "−") + Math.abs(x).toFixed(d === undefined ? 3 : d); }
  function pct(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(1) + "%"; }
  function rgb(g) {
    if (g === null || g === undefined) return NONE;
    var u = Math.max(-1, Math.min(1, g / scale)), end = u < 0 ? NEG : POS, a = Math.abs(u);
    return MID.map(function (m, i) { return Math.round(m + (end[i] - m) * a); });
  }
  function css(c) { return "rgb(" + c.join(",") + ")"; }
  function ink(c) { return (0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]) / 255 < 0.5 ? "#fff" : "#111"; }
  // what a token shows: visible marks for whitespace and control characters
  function shown(s) {
    if (s === null || s === undefined) return "";
    if (s === "") return "∅";
    return s.replace(/\n/g, "↵").replace(/\t/g, "→").replace(/\r/g, "␍")
      .replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, function (c) { return "\\x" + ("0" + c.charCodeAt(0).toString(16)).slice(-2); });
  }
  function quoted(s) { return s === null || s === undefined ? "(none)" : "«" + shown(s).replace(/ /g, "␣") + "»"; }

  function tooltip(tk) {
    var lines = ["position " + tk.position + ": " + quoted(tk.token) + (tk.next_token === null ? " (last token)" : " → next " + quoted(tk.next_token))];
    if (tk.next_token !== null) {
      lines.push(label.vanilla + ": loss " + num(tk.vanilla_loss) + " nats (p = " + num(tk.prob.vanilla) + ")");
      lines.push(label.myopic + ": loss " + num(tk.myopic_loss) + " nats (p = " + num(tk.prob.myopic) + ")");
      lines.push("gap " + signed(tk.gap) + " nats");
      if (tk.future_grad_share !== null) lines.push("future-gradient share " + pct(tk.future_grad_share) + " (" + label.vanilla + ")");
    } else {
      lines.push("no next token in the prompt; the detail shows what each model predicts next");
    }
    return lines.join("\n");
  }

  var sections = [];

  function buildPrompt(p, prompt, root) {
    var sec = el("section", { "class": "prompt", id: "prompt-" + p });
    var head = el("h2", { text: (data.prompts.length > 1 ? (p + 1) + ". " : "") + prompt.source });
    sec.appendChild(head);
    var ml = prompt.mean_loss;
    sec.appendChild(el("p", { "class": "kv" }, [
      "mean gap " + signed(prompt.mean_gap) + " nats over " + (prompt.n_tokens - 1) + " predictions (" +
      label.vanilla + " " + num(ml.vanilla) + ", " + label.myopic + " " + num(ml.myopic) + " nats per token)"]));
    var box = el("div", { "class": "tokens", role: "list", "aria-label": "tokens of " + prompt.source });
    var chips = [];
    prompt.tokens.forEach(function (tk, t) {
      var c = rgb(tk.gap);
      var s = shown(tk.token);
      var cls = "tok" + (tk.next_token === null ? " last" : "") + (/^\s+$/.test(tk.token) ? " ws" : "");
      var chip = el("span", { "class": cls, tabindex: "0", role: "button", "data-p": p, "data-t": t,
                              title: tooltip(tk), style: "background:" + css(c) + ";color:" + ink(c) }, [s]);
      chip.addEventListener("click", function () { select(p, t); });
      chip.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); select(p, t); }
        if (ev.key === "ArrowRight" && t + 1 < prompt.tokens.length) { ev.preventDefault(); select(p, t + 1, true); }
        if (ev.key === "ArrowLeft" && t > 0) { ev.preventDefault(); select(p, t - 1, true); }
      });
      chips.push(chip);
      box.appendChild(chip);
      if (tk.token.indexOf("\n") >= 0) box.appendChild(el("br"));
    });
    sec.appendChild(box);
    sec.appendChild(strip(p, prompt));
    var detail = el("div", { "class": "detail", id: "detail-" + p, "aria-live": "polite" },
                    [el("p", { "class": "note", text: "Click a token (or use Tab and Enter, then ← →) to see its details." })]);
    sec.appendChild(detail);
    root.appendChild(sec);
    sections.push({ chips: chips, detail: detail, prompt: prompt });
  }

  // per position: bars = gap (centred at zero), line = future-gradient share of the reference model
  function strip(p, prompt) {
    var T = prompt.tokens.length, w = 10, H = 80, mid = 40;
    var s = svg("svg", { "class": "strip", viewBox: "0 0 " + (T * w) + " " + H, preserveAspectRatio: "none",
                         role: "img", "aria-label": "gap per token and future-gradient share" });
    s.appendChild(svg("line", { x1: 0, x2: T * w, y1: mid, y2: mid, stroke: "#999", "stroke-width": 0.5 }));
    var pts = [];
    prompt.tokens.forEach(function (tk, t) {
      if (tk.gap !== null) {
        var hgt = Math.min(1, Math.abs(tk.gap) / scale) * (mid - 2);
        var r = svg("rect", { x: t * w + 1, width: w - 2, y: tk.gap >= 0 ? mid - hgt : mid, height: Math.max(hgt, 0.5),
                              fill: css(rgb(tk.gap >= 0 ? scale : -scale)), style: "cursor:pointer" });
        var ti = svg("title", {}); ti.textContent = tooltip(tk); r.appendChild(ti);
        r.addEventListener("click", function () { select(p, t, true); });
        s.appendChild(r);
      }
      if (tk.future_grad_share !== null) pts.push((t * w + w / 2) + "," + (H - 2 - Math.max(0, Math.min(1, tk.future_grad_share)) * (H - 4)));
    });
    if (pts.length > 1) s.appendChild(svg("polyline", { points: pts.join(" "), fill: "none", stroke: "#222", "stroke-width": 1, "stroke-dasharray": "3,2" }));
    var fig = el("figure", {}, [s, el("figcaption", { text: "Bars: gap per token (" + label.myopic + " − " + label.vanilla +
      ", nats; clipped at ±" + num(scale, 2) + "). Dashed line: share of the gradient of the computation at each position " +
      "that comes from later losses (" + label.vanilla + ", 0 at the bottom to 100% at the top)." })]);
    return fig;
  }

  function predictions(list, target) {
    return el("div", {}, list.map(function (q) {
      return el("span", { "class": "pred" + (target !== null && q.token === target ? " hit" : ""), title: "p = " + q.prob.toFixed(4) },
                [shown(q.token).replace(/ /g, "␣") + " " + (100 * q.prob).toFixed(1) + "%"]);
    }));
  }

  function offsetBars(grad, m) {
    // tau >= 1 only: tau = 0 dominates and would flatten the rest; its share is stated in the text.
    // m: the largest |share| over both models, so their bars compare
    var vals = grad.by_offset.slice(1);
    var s = svg("svg", { "class": "bars", viewBox: "0 0 " + Math.max(vals.length, 1) * 8 + " 90", preserveAspectRatio: "none", role: "img",
                         "aria-label": "share of the gradient by offset tau" });
    s.appendChild(svg("line", { x1: 0, x2: vals.length * 8, y1: 45, y2: 45, stroke: "#999", "stroke-width": 0.5 }));
    vals.forEach(function (v, k) {
      var h = Math.abs(v) / m * 43;
      var r = svg("rect", { x: k * 8 + 1, width: 6, y: v >= 0 ? 45 - h : 45, height: Math.max(h, 0.3), fill: v >= 0 ? "#e66101" : "#5e3c99" });
      var ti = svg("title", {}); ti.textContent = "τ = " + (k + 1) + ": " + pct(v); r.appendChild(ti);
      s.appendChild(r);
    });
    return el("div", {}, [s, el("div", { "class": "note kv", style: "display:flex;justify-content:space-between" },
      [el("span", { text: "τ = 1" }), el("span", { text: "bar height: ±" + pct(m) }), el("span", { text: "τ = " + vals.length })])]);
  }
  function laterMax(tk) {
    var m = 1e-12;
    ROLES.forEach(function (r) { var g = tk.future_grad[r]; if (g) g.by_offset.slice(1).forEach(function (v) { m = Math.max(m, Math.abs(v)); }); });
    return m;
  }

  function gradBlock(role, grad, m) {
    if (!grad) return el("p", { "class": "note", text: label[role] + ": no loss at or after this position in the prompt." });
    var top = grad.top_offsets.map(function (o) { return "τ = " + o.tau + " (" + pct(o.share) + ")"; }).join(", ");
    return el("div", {}, [
      el("p", { "class": "kv" }, [el("b", { text: label[role] }), ": " + pct(grad.share) + " from later losses (all parameters; W_K+W_V " +
        pct(grad.share_kv) + "), own loss τ = 0: " + pct(grad.by_offset[0])]),
      el("p", { "class": "kv note", text: top ? "largest later offsets: " + top : "no later losses in this prompt" }),
      grad.by_offset.length > 1 ? offsetBars(grad, m) : null,
    ]);
  }

  function readsBlock(role, reads) {
    var rows = reads.top.map(function (r) {
      return el("tr", {}, [el("td", { "class": "num", text: String(r.position) }), el("td", { "class": "mono", text: quoted(r.token) }),
        el("td", { "class": "num", text: pct(r.share) }), el("td", { "class": "num", text: signed(r.attribution, 4) })]);
    });
    return el("div", {}, [
      el("p", {}, [el("b", { text: label[role] }), ": own token " + pct(reads.self_share) + " of the attribution"]),
      rows.length ? el("div", { "class": "scroll" }, [el("table", {}, [el("tr", {}, [el("th", { "class": "num", text: "pos" }),
        el("th", { text: "token" }), el("th", { "class": "num", text: "share" }), el("th", { "class": "num", text: "grad×input" })])].concat(rows))])
        : el("p", { "class": "note", text: "no earlier position" }),
    ]);
  }

  function probesBlock(tk) {
    if (!tk.probes) return el("p", { "class": "note", text: data.probes.note || "no probes for these models" });
    return el("div", { "class": "cols" }, ROLES.map(function (role) {
      var rows = (tk.probes[role] || []).map(function (r) {
        return el("tr", {}, [el("td", { "class": "num", text: "t+" + r.offset }), el("td", { "class": "num", text: String(r.layer) }),
          el("td", { "class": "mono", text: quoted(r.target) }), el("td", { "class": "num", text: r.target_prob === null ? "–" : pct(r.target_prob) }),
          el("td", {}, [predictions(r.top, r.target)])]);
      });
      return el("div", {}, [el("b", { text: label[role] }), rows.length ? el("div", { "class": "scroll" }, [el("table", {}, [el("tr", {}, [
        el("th", { "class": "num", text: "token" }), el("th", { "class": "num", text: "layer" }), el("th", { text: "actual" }),
        el("th", { "class": "num", text: "p(actual)" }), el("th", { text: "probe's top guesses" })])].concat(rows))])
        : el("p", { "class": "note", text: "no probes for this model" })]);
    }));
  }

  function select(p, t, focus) {
    var sec = sections[p], tk = sec.prompt.tokens[t];
    sec.chips.forEach(function (c) { c.classList.remove("sel"); c.classList.remove("read"); });
    sec.chips[t].classList.add("sel");
    tk.reads.vanilla.top.forEach(function (r) { sec.chips[r.position].classList.add("read"); });
    if (focus) sec.chips[t].focus();
    var d = sec.detail;
    d.innerHTML = "";
    d.setAttribute("data-position", String(t));
    d.appendChild(el("h3", { text: "position " + t + ": " + quoted(tk.token) + (tk.next_token === null ? " — the last token" : " → next " + quoted(tk.next_token)) }));
    var lossRows = ROLES.map(function (role) {
      return el("tr", {}, [el("td", { text: label[role] + " (" + data.models[role].policy + ")" }),
        el("td", { "class": "num", text: num(tk[role + "_loss"]) }), el("td", { "class": "num", text: tk.prob[role] === null ? "–" : pct(tk.prob[role]) }),
        el("td", {}, [predictions(tk.top5[role], tk.next_token)])]);
    });
    d.appendChild(el("div", { "class": "scroll" }, [el("table", {}, [el("tr", {}, [el("th", { text: "model" }), el("th", { "class": "num", text: "loss (nats)" }),
      el("th", { "class": "num", text: "p(next)" }), el("th", { text: "top-5 predictions (actual next token highlighted)" })])].concat(lossRows))]));
    if (tk.gap !== null) d.appendChild(el("p", { "class": "kv" }, [el("b", { text: "gap " + signed(tk.gap) + " nats" }),
      tk.gap > 0 ? " — " + label.myopic + " predicts the next token worse" : " — " + label.myopic + " predicts the next token at least as well"]));
    d.appendChild(el("h3", { text: "Gradient this position's computation receives from later losses" }));
    d.appendChild(el("p", { "class": "note", text: "The vanilla gradient of this prompt's loss, at each model's weights, split exactly by the loss position it comes from (τ tokens later). A share is the projection of that part on the whole gradient: shares add up to 100%, and one can exceed it when others oppose it. Bars: share by τ ≥ 1 (orange adds to the gradient, purple opposes it), one scale for both models." }));
    d.appendChild(el("div", { "class": "cols" }, ROLES.map(function (role) { return gradBlock(role, tk.future_grad[role], laterMax(tk)); })));
    d.appendChild(el("h3", { text: "Earlier positions this prediction reads most" }));
    d.appendChild(el("p", { "class": "note", text: "Gradient × input attribution of log p(" + (tk.next_token === null ? "each model's top prediction" : "next token") +
      ") to the token embedding at each position (underlined in the text: " + label.vanilla + "'s top 5)." }));
    d.appendChild(el("div", { "class": "cols" }, ROLES.map(function (role) { return readsBlock(role, tk.reads[role]); })));
    d.appendChild(el("h3", { text: "What the state at this position decodes about later tokens (probes)" }));
    d.appendChild(probesBlock(tk));
  }

  function summary(root) {
    var all = [];
    data.prompts.forEach(function (pr, p) { pr.tokens.forEach(function (tk, t) { if (tk.gap !== null) all.push([tk.gap, p, t]); }); });
    all.sort(function (a, b) { return b[0] - a[0]; });
    var rows = all.slice(0, data.view.summary_rows).map(function (x) {
      var tk = data.prompts[x[1]].tokens[x[2]];
      var ctx = data.prompts[x[1]].tokens.slice(Math.max(0, x[2] - 12), x[2] + 1).map(function (k) { return shown(k.token); }).join("");
      var a = el("a", { href: "#prompt-" + x[1], text: "open" });
      a.addEventListener("click", function () { select(x[1], x[2], true); });
      return el("tr", {}, [el("td", { "class": "num", text: data.prompts.length > 1 ? (x[1] + 1) + ":" + x[2] : String(x[2]) }),
        el("td", { "class": "mono", text: "…" + ctx + " → " + quoted(tk.next_token) }), el("td", { "class": "num", text: num(tk.vanilla_loss) }),
        el("td", { "class": "num", text: num(tk.myopic_loss) }), el("td", { "class": "num", text: signed(tk.gap) }),
        el("td", { "class": "num", text: pct(tk.future_grad_share) }), el("td", {}, [a])]);
    });
    root.appendChild(el("h2", { text: "Tokens with the largest gaps" + (data.prompts.length > 1 ? " (all prompts)" : "") }));
    root.appendChild(el("div", { "class": "scroll" }, [el("table", { "class": "summary-table" }, [el("tr", {}, [
      el("th", { "class": "num", text: data.prompts.length > 1 ? "prompt:pos" : "pos" }), el("th", { text: "context → next token" }),
      el("th", { "class": "num", text: label.vanilla }), el("th", { "class": "num", text: label.myopic }), el("th", { "class": "num", text: "gap" }),
      el("th", { "class": "num", text: "future grad." }), el("th", { text: "" })])].concat(rows))]));
  }

  var root = document.getElementById("explain");
  data.prompts.forEach(function (pr, p) { buildPrompt(p, pr, root); });
  summary(root);
  // open the largest gap of the first prompt, so the page shows a panel before any click
  var first = data.prompts[0].tokens, best = 0;
  first.forEach(function (tk, t) { if (tk.gap !== null && tk.gap > (first[best].gap === null ? -Infinity : first[best].gap)) best = t; });
  select(0, best, false);
  document.body.setAttribute("data-ready", "1");
})();
