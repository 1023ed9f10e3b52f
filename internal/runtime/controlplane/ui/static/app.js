// crmsync status page: reads the control plane's API (docs/api/openapi.yaml) with the session cookie that
// signing in opens. Every value from the API is put in the page as text, never as markup.
(function () {
  "use strict";

  var REFRESH_MS = 2000;
  var SLOW_EVERY = 5; // history and backups every 5 refreshes
  var RATE_WINDOW_S = 20; // load rate and ETA over the last 20 s of samples
  var MAX_SAMPLES = 1800; // live samples kept per connector (an hour at one per 2 s)

  var state = { csrf: "", timer: null, tick: 0, connector: null, samples: [], history: [], charts: {}, lastStatus: null };

  function $(id) { return document.getElementById(id); }

  // el builds an element; string children become text nodes.
  function el(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === "text") { e.textContent = attrs[k]; } else if (k === "class") { e.className = attrs[k]; } else { e.setAttribute(k, attrs[k]); }
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) { continue; }
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return e;
  }

  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }

  function num(n) { return (n || 0).toLocaleString("en-US"); }

  function secs(s) {
    if (!s || s <= 0) { return "0s"; }
    if (s < 60) { return s.toFixed(1) + "s"; }
    return dur(s);
  }

  function dur(s) {
    s = Math.round(s);
    if (s < 60) { return s + "s"; }
    if (s < 3600) { return Math.floor(s / 60) + "m" + (s % 60 ? (s % 60) + "s" : ""); }
    if (s < 48 * 3600) { return Math.floor(s / 3600) + "h" + (Math.floor(s / 60) % 60 ? (Math.floor(s / 60) % 60) + "m" : ""); }
    return Math.floor(s / 86400) + "d" + Math.floor((s % 86400) / 3600) + "h";
  }

  function ago(t) {
    if (!t) { return "never"; }
    return dur(Math.max(0, (Date.now() - new Date(t).getTime()) / 1000)) + " ago";
  }

  function showError(msg) { $("error").textContent = msg || ""; }

  // api calls the control plane; a 401 means the session ended.
  function api(method, path, body) {
    var opts = { method: method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    if (method !== "GET") { opts.headers["X-CSRF-Token"] = state.csrf; }
    return fetch(path, opts).then(function (r) {
      return r.text().then(function (text) {
        var data = null;
        if (text) { try { data = JSON.parse(text); } catch (e) { data = null; } }
        if (r.status === 401 && path !== "/ui/session") {
          showSignIn();
          throw new Error("your session ended: sign in again");
        }
        if (!r.ok) {
          throw new Error(data && data.error ? data.error.message : "HTTP " + r.status);
        }
        return data;
      });
    });
  }

  // Theme: the system's, unless the toggle chose one (kept in this browser).
  function applyTheme() {
    var t = localStorage.getItem("crmsync-theme");
    if (t === "light" || t === "dark") { document.documentElement.setAttribute("data-theme", t); } else { document.documentElement.removeAttribute("data-theme"); }
    var dark = isDark();
    $("theme-toggle").textContent = dark ? "Light" : "Dark";
    $("theme-toggle").setAttribute("aria-pressed", dark ? "true" : "false");
  }

  function isDark() {
    var t = document.documentElement.getAttribute("data-theme");
    if (t) { return t === "dark"; }
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  }

  function views(which) {
    ["signin-view", "list-view", "connector-view"].forEach(function (v) { $(v).hidden = v !== which; });
    $("signout").hidden = which === "signin-view";
    $("nav-connectors").hidden = which === "signin-view";
  }

  function showSignIn() {
    stop();
    state.csrf = "";
    views("signin-view");
    $("token").focus();
  }

  function stop() {
    if (state.timer) { clearInterval(state.timer); state.timer = null; }
  }

  function route() {
    var h = location.hash || "#/";
    var m = /^#\/connector\/(con_[0-9a-f]{32})$/.exec(h);
    stop();
    showError("");
    if (m) {
      if (state.connector !== m[1]) {
        state.connector = m[1];
        state.samples = [];
        state.history = [];
        destroyCharts();
      }
      views("connector-view");
      state.tick = 0;
      refreshConnector(true);
      state.timer = setInterval(function () { refreshConnector(false); }, REFRESH_MS);
    } else {
      state.connector = null;
      views("list-view");
      refreshList();
      state.timer = setInterval(refreshList, REFRESH_MS);
    }
  }

  function updated() { $("updated").textContent = "Updated " + new Date().toLocaleTimeString(); }

  // The connectors list.
  function refreshList() {
    api("GET", "/v1/connectors").then(function (list) {
      var conns = list.connectors || [];
      return Promise.all(conns.map(function (c) { return api("GET", "/v1/connectors/" + c.id + "/status"); }));
    }).then(function (sts) {
      var body = $("connectors").tBodies[0];
      clear(body);
      sts.forEach(function (s) {
        var agent = s.agent ? s.agent.host + " (pid " + s.agent.pid + "), heartbeat " + ago(s.agent.heartbeat_at) : "—";
        body.appendChild(el("tr", { "data-connector": s.name },
          el("td", null, el("a", { href: "#/connector/" + s.connector_id, class: "connector-link", text: s.name })),
          el("td", null, el("span", { class: "badge state-" + s.state, text: s.state })),
          el("td", { text: revision(s) }),
          el("td", { text: agent }),
          el("td", { class: "num", text: secs(s.lag_seconds) }),
          el("td", { class: "num", text: num(s.dead_letters) })));
      });
      $("list-empty").hidden = sts.length > 0;
      updated();
      showError("");
    }).catch(function (e) { showError(e.message); });
  }

  function revision(s) {
    if (!s.deployed_revision) { return s.latest_revision + (s.active ? " (not running yet)" : " (inactive)"); }
    if (s.deployed_revision !== s.latest_revision) { return s.deployed_revision + "/" + s.latest_revision + " (behind)"; }
    return String(s.latest_revision);
  }

  // One connector.
  function refreshConnector(first) {
    var id = state.connector;
    var slow = first || state.tick % SLOW_EVERY === 0;
    state.tick++;
    var jobs = [api("GET", "/v1/connectors/" + id + "/status"), api("GET", "/v1/connectors/" + id + "/dead-letters?limit=100")];
    if (slow) {
      jobs.push(api("GET", "/v1/connectors/" + id + "/history"));
      jobs.push(api("GET", "/v1/backups?connector_id=" + id));
    }
    Promise.all(jobs).then(function (res) {
      if (state.connector !== id) { return; }
      var st = res[0];
      state.lastStatus = st;
      sample(st);
      if (slow) {
        state.history = res[2].points || [];
        renderBackups(res[3].backups || []);
      }
      renderConnector(st);
      renderDeadLetters(res[1]);
      renderCharts();
      updated();
      showError("");
    }).catch(function (e) { showError(e.message); });
  }

  // sample keeps the report the status answered, as a point like the history's.
  function sample(st) {
    // A connector whose agent never reported has the zero time (year 1) as updated_at: no sample.
    if (!st.updated_at || new Date(st.updated_at).getFullYear() < 2000 ||
        (state.samples.length && state.samples[state.samples.length - 1].at === st.updated_at)) { return; }
    state.samples.push({ at: st.updated_at, tables: (st.tables || []).map(function (t) {
      return { table: t.table, phase: t.phase, load_done: t.load_done, load_total: t.load_total, written: t.written,
        lag_seconds: t.lag_seconds, latency_p50: t.latency ? t.latency.p50 : 0, latency_p95: t.latency ? t.latency.p95 : 0 };
    }) });
    if (state.samples.length > MAX_SAMPLES) { state.samples.shift(); }
  }

  // points merges the control plane's history with the page's own samples, oldest first.
  function points() {
    var all = state.history.concat(state.samples);
    all.sort(function (a, b) { return new Date(a.at) - new Date(b.at); });
    var out = [];
    all.forEach(function (p) {
      if (!out.length || new Date(p.at) - new Date(out[out.length - 1].at) > 500) { out.push(p); }
    });
    return out;
  }

  function tableOf(p, name) {
    for (var i = 0; i < (p.tables || []).length; i++) { if (p.tables[i].table === name) { return p.tables[i]; } }
    return null;
  }

  // loadRate is a table's load rate in rows per second over the last samples (0 when unknown).
  function loadRate(name) {
    var ps = points();
    var last = null, first = null;
    for (var i = ps.length - 1; i >= 0; i--) {
      var t = tableOf(ps[i], name);
      if (!t) { continue; }
      if (!last) { last = { at: new Date(ps[i].at), done: t.load_done }; continue; }
      if ((last.at - new Date(ps[i].at)) / 1000 > RATE_WINDOW_S) { break; }
      if (t.load_done > last.done) { break; } // a new load started since
      first = { at: new Date(ps[i].at), done: t.load_done };
    }
    if (!first || !last) { return 0; }
    var dt = (last.at - first.at) / 1000;
    return dt > 0 ? (last.done - first.done) / dt : 0;
  }

  function renderConnector(st) {
    $("c-name").textContent = st.name;
    var badge = $("c-state");
    badge.textContent = st.state;
    badge.className = "badge state-" + st.state;
    $("c-reason").textContent = st.reason || "";
    $("c-revision").textContent = revision(st);
    $("c-agent").textContent = st.agent ? st.agent.host + " (pid " + st.agent.pid + "), revision " + st.agent.revision + ", heartbeat " + ago(st.agent.heartbeat_at) : "no agent";
    $("c-lag").textContent = secs(st.lag_seconds);
    $("c-dead").textContent = num(st.dead_letters);
    $("c-calls").textContent = num(st.salesforce_calls) + " Salesforce, " + num(st.dataverse_requests) + " Dataverse (" + num(st.dataverse_throttled) + " throttled)";
    // Several Dataverse application users: each one's share of the current agent's requests.
    var users = st.application_users || [];
    if (users.length > 1) {
      $("c-calls").textContent += " · " + users.length + " Dataverse application users: " + users.map(function (u) {
        return u.client_id.slice(0, 8) + "… " + num(u.requests || 0) + " (" + num(u.throttled || 0) + " throttled)";
      }).join(", ");
    }

    var box = $("tables");
    clear(box);
    var oob = $("oob"), rec = $("reconcile"), recs = $("recoveries");
    clear(oob); clear(rec); clear(recs);
    (st.tables || []).forEach(function (t) {
      var card = el("section", { class: "card", "data-table": t.table, "aria-label": t.table },
        el("h3", null, t.table + " → " + t.destination + " ", el("span", { class: "badge state-" + (t.phase === "resyncing" ? "resyncing" : t.phase), text: t.phase })));
      var loading = t.phase === "initial_load" || t.phase === "resyncing" || t.phase === "pending";
      var pct = t.load_total > 0 ? Math.min(100, 100 * t.load_done / t.load_total) : 0;
      var prog = el("progress", { max: String(Math.max(1, t.load_total)), value: String(Math.min(t.load_done, Math.max(1, t.load_total))),
        "aria-label": t.table + " load progress", "data-done": String(t.load_done), "data-total": String(t.load_total) });
      card.appendChild(prog);
      var line = num(t.load_done) + " / " + num(t.load_total) + " rows loaded (" + pct.toFixed(0) + "%)";
      if (loading) {
        // The agent's own measure spans Dataverse's 5-minute service-protection window, so a budget-bound
        // load's waits count; the page's samples are the fallback for an agent that reports none.
        var rate = t.load_rate > 0 ? t.load_rate : loadRate(t.table);
        if (rate > 0) {
          line += " · " + num(Math.round(rate)) + " rows/s";
          var left = t.load_total - t.load_done;
          if (left > 0) { line += " · about " + dur(left / rate) + " left"; }
        }
        if (t.phase === "pending") { line = "waiting for the tables its lookups point at"; }
      }
      card.appendChild(el("p", { class: "progress-text", text: line }));
      card.appendChild(el("p", { class: "counters", text: "received " + num(t.received) + " · written " + num(t.written) + " · dead-lettered " +
        num(t.dead_lettered) + " · skipped " + num(t.skipped) + " · lag " + secs(t.lag_seconds) +
        (t.latency ? " · latency p50 " + secs(t.latency.p50) + ", p95 " + secs(t.latency.p95) : "") }));
      if (t.replay_at) {
        card.appendChild(el("p", { class: "counters", text: "replay position " + dur(t.replay_age_seconds) + " old, of the " + Math.round(t.retention_seconds / 3600) + "h retention" }));
      }
      if (t.reason) { card.appendChild(el("p", { class: "reason", text: t.reason })); }
      (t.owed || []).forEach(function (o) { card.appendChild(el("p", { class: "counters", text: "owes " + o })); });
      box.appendChild(card);

      if (t.out_of_band) {
        var o = t.out_of_band;
        var div = el("div", { class: "card", "data-table": t.table },
          el("p", { text: t.table + ": " + num(o.detected) + " found, " + num(o.repaired) + " repaired (" +
            (o.repair ? "rewritten from Salesforce" : "reported only") + "), checked " + ago(o.checked_at) }));
        var ul = el("ul");
        (o.examples || []).forEach(function (e) {
          ul.appendChild(el("li", { text: new Date(e.modified_at).toLocaleString() + " " + e.record_id + " by " + (e.modified_by_name || e.modified_by) +
            ": " + (e.columns || []).join(", ") + (e.repaired ? " (repaired)" : "") }));
        });
        div.appendChild(ul);
        oob.appendChild(div);
      }
      if (t.reconcile) {
        var r = t.reconcile;
        var outcome = !r.finished_at ? "running" : r.error ? "failed" : r.match ? "match" : "differed";
        rec.appendChild(el("p", { "data-table": t.table, text: t.table + ": " + outcome + " · " + num(r.source_rows) + " rows in Salesforce, " +
          num(r.destination_rows) + " in Dataverse · missing " + r.missing + ", different " + r.different + ", extra " + r.extra +
          " · healed " + r.healed + (r.unhealed ? ", not healed " + r.unhealed : "") + " · " + (r.trigger === "request" ? "requested" : "scheduled") +
          " " + ago(r.finished_at || r.started_at) + (r.error ? " · " + r.error : "") }));
      }
      (t.recoveries || []).forEach(function (x) { recs.appendChild(el("li", { text: t.table + ": " + x })); });
    });
    if (!oob.firstChild) { oob.appendChild(el("p", { class: "muted", text: "None found (or the detector has not run yet)." })); }
    if (!rec.firstChild) { rec.appendChild(el("p", { class: "muted", text: "No reconciliation ran yet." })); }
    if (!recs.firstChild) { recs.appendChild(el("li", { class: "muted", text: "None." })); }
  }

  function renderDeadLetters(list) {
    var body = $("dead-letters").tBodies[0];
    var open = {};
    Array.prototype.forEach.call(body.querySelectorAll("details[open]"), function (d) { open[d.getAttribute("data-record")] = true; });
    clear(body);
    var dls = list.dead_letters || [];
    dls.forEach(function (d) {
      var details = el("details", { "data-record": d.record_id }, el("summary", { text: "Payload" }), el("pre", { class: "payload", text: pretty(d.payload) }));
      if (open[d.record_id]) { details.setAttribute("open", ""); }
      var retry = el("button", { type: "button", class: "retry", "data-record": d.record_id, text: "Retry" });
      var discard = el("button", { type: "button", class: "discard danger", "data-record": d.record_id, text: "Discard" });
      retry.addEventListener("click", function () { act("retry", d, retry); });
      discard.addEventListener("click", function () {
        if (window.confirm("Discard the dead letter of " + d.record_id + "? The record is not written.")) { act("discard", d, discard); }
      });
      body.appendChild(el("tr", { "data-record": d.record_id },
        el("td", { text: d.table }), el("td", null, el("code", { text: d.record_id })), el("td", { text: d.code }),
        el("td", { class: "num", text: String(d.attempts) }), el("td", { text: ago(d.at) }),
        el("td", null, el("div", { class: "reason", text: d.reason }), details),
        el("td", null, retry, " ", discard)));
    });
    $("dl-empty").hidden = dls.length > 0;
    $("dead-letters").hidden = dls.length === 0;
  }

  function pretty(payload) {
    if (!payload) { return "(none)"; }
    try { return JSON.stringify(JSON.parse(payload), null, 2); } catch (e) { return payload; }
  }

  function act(action, d, button) {
    button.disabled = true;
    api("POST", "/v1/connectors/" + state.connector + "/dead-letters/" + action, { table: d.table, record_ids: [d.record_id] }).then(function (res) {
      $("dl-message").textContent = action === "retry"
        ? res.affected + " dead letter(s) of " + d.record_id + " marked for retry: the agent reads the record again and writes it within about 15 s."
        : res.affected + " dead letter(s) of " + d.record_id + " discarded.";
      refreshConnector(false);
    }).catch(function (e) {
      button.disabled = false;
      $("dl-message").textContent = action + " failed: " + e.message;
    });
  }

  function renderBackups(bs) {
    var body = $("backups").tBodies[0];
    clear(body);
    bs.forEach(function (b) {
      body.appendChild(el("tr", { "data-backup": b.id },
        el("td", null, el("code", { text: b.id })), el("td", { text: b.trigger }), el("td", { text: b.state + (b.error ? ": " + b.error : "") }),
        el("td", { class: "num", text: num(b.rows) }), el("td", { text: new Date(b.created_at).toLocaleString() }),
        el("td", null, el("code", { text: "crmsync backup restore " + b.id }))));
    });
    $("backups-empty").hidden = bs.length > 0;
    $("backups").hidden = bs.length === 0;
  }

  // Charts (uPlot).
  function destroyCharts() {
    Object.keys(state.charts).forEach(function (k) { state.charts[k].destroy(); });
    state.charts = {};
  }

  function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

  function chart(id, series, data) {
    var box = $(id);
    var width = Math.max(300, box.clientWidth - 4);
    var have = 0;
    for (var i = 0; i < data[0].length; i++) {
      for (var s = 1; s < data.length; s++) { if (data[s][i] !== null && data[s][i] !== undefined) { have++; break; } }
    }
    box.setAttribute("data-points", String(have));
    var key = id + ":" + series.map(function (x) { return x.label; }).join(",") + ":" + width + ":" + (isDark() ? "d" : "l");
    var c = state.charts[id];
    if (c && c.crmsyncKey === key) {
      c.setData(data);
      return;
    }
    if (c) { c.destroy(); }
    var axis = { stroke: cssVar("--muted"), grid: { stroke: cssVar("--line"), width: 1 }, ticks: { stroke: cssVar("--line"), width: 1 } };
    var colors = ["--s1", "--s2", "--s3", "--s4"];
    var opts = {
      width: width, height: 220,
      series: [{}].concat(series.map(function (x, i) { return { label: x.label, stroke: cssVar(colors[i % colors.length]), width: 2, spanGaps: true, points: { size: 4 } }; })),
      axes: [axis, axis],
      scales: { x: { time: true } },
      legend: { live: false }
    };
    c = new window.uPlot(opts, data, box);
    c.crmsyncKey = key;
    state.charts[id] = c;
  }

  function renderCharts() {
    if (!window.uPlot) { return; }
    var ps = points();
    var names = [];
    ps.forEach(function (p) { (p.tables || []).forEach(function (t) { if (names.indexOf(t.table) < 0) { names.push(t.table); } }); });
    names.sort();
    var xs = [], thr = names.map(function () { return []; }), p50 = [], p95 = [], lag = [];
    for (var i = 0; i < ps.length; i++) {
      var at = new Date(ps[i].at).getTime() / 1000;
      xs.push(at);
      var prevAt = i > 0 ? new Date(ps[i - 1].at).getTime() / 1000 : 0;
      names.forEach(function (n, j) {
        var cur = tableOf(ps[i], n), prev = i > 0 ? tableOf(ps[i - 1], n) : null;
        thr[j].push(cur && prev && at > prevAt && cur.written >= prev.written ? (cur.written - prev.written) / (at - prevAt) : null);
      });
      var a = null, b = null, l = null;
      (ps[i].tables || []).forEach(function (t) {
        if (t.latency_p50) { a = Math.max(a || 0, t.latency_p50); }
        if (t.latency_p95) { b = Math.max(b || 0, t.latency_p95); }
        l = Math.max(l || 0, t.lag_seconds || 0);
      });
      p50.push(a); p95.push(b); lag.push(l);
    }
    chart("chart-throughput", names.map(function (n) { return { label: n }; }), [xs].concat(thr));
    chart("chart-latency", [{ label: "p50" }, { label: "p95" }, { label: "lag" }], [xs, p50, p95, lag]);
  }

  // Sign-in and sign-out.
  function signIn(ev) {
    ev.preventDefault();
    var input = $("token");
    var token = input.value;
    input.value = ""; // not kept: the session cookie is what the page uses from now on
    $("signin-error").textContent = "";
    api("POST", "/ui/session", { token: token }).then(function (s) {
      state.csrf = s.csrf_token;
      route();
      $("main").focus();
    }).catch(function (e) { $("signin-error").textContent = e.message; input.focus(); });
  }

  function signOut() {
    api("DELETE", "/ui/session").catch(function () { return null; }).then(function () { showSignIn(); });
  }

  function start() {
    applyTheme();
    $("theme-toggle").addEventListener("click", function () {
      localStorage.setItem("crmsync-theme", isDark() ? "light" : "dark");
      applyTheme();
      destroyCharts();
      if (state.connector) { renderCharts(); }
    });
    $("signin").addEventListener("submit", signIn);
    $("signout").addEventListener("click", signOut);
    window.addEventListener("hashchange", function () { if (state.csrf) { route(); } });
    window.addEventListener("resize", function () { if (state.connector) { destroyCharts(); renderCharts(); } });
    api("GET", "/ui/session").then(function (s) {
      state.csrf = s.csrf_token;
      route();
    }).catch(function () { showSignIn(); });
  }

  document.addEventListener("DOMContentLoaded", start);
}());
