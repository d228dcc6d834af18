/* Draws the graph of the page (JSON in #graph-data) with vis-network: positions come from the
 * server, physics stays off. Click a node to expand it (or open a cluster); hover for its
 * details; the "as of" slider replays the graph as it was. Each host is a labelled box behind
 * its nodes, computed on every redraw from where the nodes are (the server lays hosts out in
 * bands; expanded or opened nodes grow their host's box). Every recorded name is shown as
 * text: labels and host names are drawn on the canvas, tooltips and details are built with
 * textContent. */
"use strict";
(function () {
  // vis-network may still be loading (the explore page loads it async, while the server
  // builds the graph): start once it is there.
  function start() {
    const container = document.getElementById("graph");
    if (!container || typeof vis === "undefined") return;
    window.graphScriptAt = performance.now();  // vis-network loaded and run; drawing starts
    const data = JSON.parse(document.getElementById("graph-data").textContent);
    const COLORS = { process: "#4e79a7", file: "#59a14f", pipe: "#f28e2b", endpoint: "#e15759" };
    const MARKS = { same: "#bab0ac", changed: "#f28e2b", only_a: "#4e79a7", only_b: "#b07aa1" };
    const SHAPES = { process: "box", file: "ellipse", pipe: "diamond", endpoint: "triangle" };
    const PALETTE = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02",
      "#a6761d", "#666666"];
    const hostColor = {};
    data.hosts.forEach(function (h, i) { hostColor[h] = PALETTE[i % PALETTE.length]; });
    document.querySelectorAll("#hosts .host").forEach(function (el) {
      el.style.borderColor = hostColor[el.dataset.host] || "#999";
    });

    function table(rows) {
      const div = document.createElement("div");
      div.className = "tip";
      const t = document.createElement("table");
      rows.forEach(function (row) {
        const tr = t.insertRow();
        const th = document.createElement("th");
        th.textContent = row[0];
        tr.appendChild(th);
        tr.insertCell().textContent = row[1];
      });
      div.appendChild(t);
      return div;
    }

    function visNode(n) {
      if (n.host && !(n.host in hostColor)) {  // a host an expansion brought in
        hostColor[n.host] = PALETTE[Object.keys(hostColor).length % PALETTE.length];
      }
      const fill = n.mark ? MARKS[n.mark] : (COLORS[n.kind] || "#999");
      return {
        id: n.id, label: n.label, x: n.x, y: n.y, shape: SHAPES[n.kind] || "dot",
        title: table(n.info || []), group: undefined,
        color: { background: fill, border: hostColor[n.host] || "#333",
          highlight: { background: fill, border: "#000" } },
        borderWidth: n.root ? 5 : 3, size: n.members ? 28 : 14,
        font: { color: (n.kind === "process" || n.kind === "file") ? "#fff" : "#222",
          size: n.members ? 18 : 13 },
        shapeProperties: n.members ? { borderDashes: [6, 3] } : {},
        _data: n,
      };
    }

    function visEdge(e) {
      return {
        id: e.id, from: e.from, to: e.to, arrows: "to", dashes: e.kind === "clustered",
        color: { color: "#90a4ae", highlight: "#263238" },
        title: table([["edge", e.kind]]), _data: e,
      };
    }

    const steps = window.graphSteps = {};  // ms of each drawing step, for the breakdown
    let stepStart = performance.now();
    function timed(name) {
      const now = performance.now();
      steps[name] = now - stepStart;
      stepStart = now;
    }
    const nodes = new vis.DataSet(data.nodes.map(visNode));
    const edges = new vis.DataSet(data.edges.map(visEdge));
    const big = data.nodes.length > 300;
    timed("data");
    const network = new vis.Network(container, { nodes: nodes, edges: edges }, {
      physics: false,
      layout: { improvedLayout: false },
      edges: { smooth: false },
      nodes: { widthConstraint: { maximum: 220 } },
      interaction: { hover: true, tooltipDelay: 120, hideEdgesOnDrag: big, hideEdgesOnZoom: big },
    });
    // Host boxes: the extent of each host's shown nodes, drawn under the graph.
    let boxes = {};
    function hostBoxes() {
      const pos = network.getPositions();
      const out = {};
      nodes.forEach(function (n) {
        const p = pos[n.id];
        if (n.hidden || !p) return;
        const h = n._data.host || "?";
        const w = n._data.members ? 150 : 120, t = n._data.members ? 50 : 34;
        const b = out[h] || (out[h] = { x0: Infinity, y0: Infinity, x1: -Infinity, y1: -Infinity });
        b.x0 = Math.min(b.x0, p.x - w); b.x1 = Math.max(b.x1, p.x + w);
        b.y0 = Math.min(b.y0, p.y - t - 22); b.y1 = Math.max(b.y1, p.y + t);
      });
      return out;
    }
    network.on("beforeDrawing", function (ctx) {
      boxes = hostBoxes();
      Object.keys(boxes).forEach(function (h) {
        const b = boxes[h], color = hostColor[h] || "#999";
        ctx.save();
        ctx.globalAlpha = 0.07;
        ctx.fillStyle = color;
        ctx.fillRect(b.x0, b.y0, b.x1 - b.x0, b.y1 - b.y0);
        ctx.globalAlpha = 0.9;
        ctx.strokeStyle = color;
        ctx.lineWidth = 2;
        ctx.setLineDash([8, 4]);
        ctx.strokeRect(b.x0, b.y0, b.x1 - b.x0, b.y1 - b.y0);
        ctx.fillStyle = color;
        ctx.font = "600 15px system-ui, sans-serif";
        ctx.fillText("host " + h, b.x0 + 8, b.y0 + 17);
        ctx.restore();
      });
    });
    timed("network");
    network.fit({ animation: false });
    network.once("afterDrawing", function () {
      timed("draw");
      window.graphReadyAt = performance.now();
      document.body.dataset.graphReady = "1";
    });
    window.ursprungGraph = { network: network, nodes: nodes, edges: edges,
      boxes: function () { return boxes; } };

    const details = document.getElementById("details");
    function showDetails(n) {
      details.replaceChildren(table(n.info || []));
    }

    function withParam(url, name, value) {
      return url + (url.indexOf("?") >= 0 ? "&" : "?") + name + "=" + encodeURIComponent(value);
    }

    let busy = 0;
    function mark() { container.dataset.busy = String(busy); }
    async function getJson(url) {
      busy++; mark();
      try {
        const res = await fetch(url, { headers: { Accept: "application/json" } });
        if (!res.ok) throw new Error(res.status + " " + (await res.text()));
        return await res.json();
      } finally { busy--; mark(); }
    }

    // Add the nodes and edges of a server answer (an expansion or an opened cluster): a node
    // already drawn is kept; one whose cluster is drawn (not opened) stays in it; edge ends
    // resolve to the node if drawn, else to its cluster. New nodes go where `place` says.
    function attach(g, place) {
      function resolve(raw, cluster) {
        if (nodes.get(raw)) return raw;
        return cluster && nodes.get(cluster) ? cluster : null;
      }
      const fresh = g.nodes.filter(function (m) {
        return !nodes.get(m.id) && !(m.cluster && nodes.get(m.cluster));
      });
      fresh.forEach(place);
      nodes.add(fresh.map(visNode));
      const add = [], seen = new Set();
      g.edges.forEach(function (e) {
        const a = resolve(e.from, e.from_cluster), b = resolve(e.to, e.to_cluster);
        if (!a || !b || a === b) return;
        const eid = a + ">" + b + ":" + e.kind;
        if (seen.has(eid) || edges.get(eid)) return;
        seen.add(eid);
        add.push(visEdge(Object.assign({}, e, { id: eid, from: a, to: b })));
      });
      edges.add(add);
      return fresh.length;
    }

    const expanded = new Set();
    async function expand(id) {
      if (!container.dataset.expand || expanded.has(id)) return;
      expanded.add(id);
      const g = await getJson(withParam(container.dataset.expand, "node", id));
      const at = network.getPositions([id])[id];
      const preds = new Set(g.edges.filter(function (e) { return e.to === id; })
        .map(function (e) { return e.from; }));
      let left = 0, right = 0;
      const added = attach(g, function (m) {
        const before = preds.has(m.id);
        const k = before ? left++ : right++;
        m.x = at.x + (before ? -260 : 260);
        m.y = at.y + (k % 2 ? 1 : -1) * Math.ceil(k / 2) * 56;
      });
      container.dataset.expanded = String(expanded.size);
      container.dataset.added = String(Number(container.dataset.added || 0) + added);
      replay();
    }

    let opened = 0;
    async function openCluster(id) {
      const g = await getJson(withParam(container.dataset.cluster, "cluster", id));
      edges.remove(edges.getIds({ filter: function (e) { return e.from === id || e.to === id; } }));
      nodes.remove(id);
      attach(g, function () {});
      opened++;
      container.dataset.opened = String(opened);
      replay();
    }

    network.on("click", function (params) {
      if (!params.nodes.length) return;
      const n = nodes.get(params.nodes[0]);
      if (!n) return;
      showDetails(n._data);
      const job = n._data.members ? openCluster(n.id) : expand(n.id);
      job.catch(function (err) { details.replaceChildren(table([["error", String(err)]])); });
    });

    // Links from the page to a node of the graph (the compare page's facts and outputs).
    document.querySelectorAll("a.node-link[data-node]").forEach(function (a) {
      a.addEventListener("click", function (ev) {
        ev.preventDefault();
        const id = a.dataset.node;
        const n = nodes.get(id);
        if (!n) {
          details.replaceChildren(table([["not drawn", "open its cluster to see it"]]));
          return;
        }
        network.selectNodes([id]);
        network.focus(id, { scale: 1.2, animation: false });
        showDetails(n._data);
        container.dataset.focused = id;
        container.scrollIntoView({ block: "center" });
      });
    });

    const slider = document.getElementById("asof-slider");
    const label = document.getElementById("asof-label");
    function replay() {
      if (!slider) { container.dataset.visible = String(nodes.length); return; }
      const v = Number(slider.value);
      const all = v >= 1000;
      const T = data.tmin + (data.tmax - data.tmin) * v / 1000;
      label.textContent = all ? "now (everything)" : new Date(T / 1e6).toISOString();
      let visible = 0;
      nodes.update(nodes.get().map(function (n) {
        const hidden = !all && !n._data.root && n._data.t != null && n._data.t > T;
        if (!hidden) visible++;
        return { id: n.id, hidden: hidden };
      }));
      edges.update(edges.get().map(function (e) {
        return { id: e.id, hidden: !all && e._data.first != null && e._data.first > T };
      }));
      container.dataset.visible = String(visible);
      const url = new URL(window.location.href);
      if (all) url.searchParams.delete("t"); else url.searchParams.set("t", String(v));
      window.history.replaceState(null, "", url);
    }
    if (slider) {
      const t = new URL(window.location.href).searchParams.get("t");
      if (t !== null && !isNaN(Number(t))) slider.value = t;
      slider.addEventListener("input", replay);
    }
    replay();
  }
  const visScript = document.getElementById("vis-network");
  if (typeof vis !== "undefined") start();
  else if (visScript) visScript.addEventListener("load", start);
})();
