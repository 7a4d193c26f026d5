/**
 * The web view served at `/` of `apiListen` (docs/api.md): one page, its script and its style as
 * strings in this module, so the single-file bundle carries them and nothing is fetched from anywhere
 * but the agent (no CDN, no build step). The page asks for the API token once, keeps it in the tab's
 * sessionStorage, and then uses the same /v1/ calls as any client: members by zone with state and
 * facts, each zone's authority and lease, recent jobs with their per-node results, and a form that runs
 * a built-in action and shows the replies as they stream in.
 *
 * Everything the page shows from the mesh (names, facts, action output) is untrusted text from other
 * nodes: the script only ever sets `textContent`, never HTML, and the page's Content-Security-Policy
 * (http-api.ts) allows no inline script and no other origin.
 *
 * The script is plain ES2020 in a string: no template literals in it (this file is a TypeScript
 * template), no dependencies.
 */
import { BUILTIN_ACTIONS } from '../../node/actions/types.js'

const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`)

/** The page; `version` is shown in the footer. */
export function webPageHtml(version: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mesh</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
</head>
<body>
<header>
  <h1>mesh</h1>
  <span id="node" class="muted"></span>
  <span class="spacer"></span>
  <span id="updated" class="muted"></span>
  <button id="forget" type="button" hidden>Forget token</button>
</header>
<section id="login" hidden>
  <form id="login-form">
    <h2>API token</h2>
    <p>Print it on the agent's machine with <code>mesh api token</code>. It is kept in this browser tab only.</p>
    <input id="token" type="password" autocomplete="off" spellcheck="false" required placeholder="token">
    <button type="submit">Open</button>
    <p id="login-error" class="error"></p>
  </form>
</section>
<main id="app" hidden>
  <section id="run">
    <h2>Run an action</h2>
    <form id="run-form">
      <label>Action <select id="run-action"></select></label>
      <label>Zone <select id="run-zone"><option value="">every zone</option></select></label>
      <label>Nodes <input id="run-node" placeholder="glob, e.g. web*" size="12" spellcheck="false"></label>
      <label><input id="run-once" type="checkbox"> authority only</label>
      <label>Timeout <select id="run-timeout"><option value="5000">5 s</option><option value="10000" selected>10 s</option><option value="30000">30 s</option></select></label>
      <button id="run-button" type="submit">Run</button>
    </form>
    <p id="run-status" class="muted"></p>
    <table id="run-replies" hidden>
      <thead><tr><th>Node</th><th>Zone</th><th>Status</th><th>Exit</th><th>Time</th><th>Output</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Members by zone</h2>
    <div id="zones"><p class="muted">Loading…</p></div>
  </section>
  <section>
    <h2>Recent jobs</h2>
    <div id="jobs"><p class="muted">Loading…</p></div>
  </section>
</main>
<footer class="muted">mesh ${escapeHtml(version)} · <a href="/v1/openapi.json">API</a></footer>
</body>
</html>
`
}

/** The page's style. */
export const WEB_APP_CSS = `
:root { color-scheme: light; --fg: #1d2327; --muted: #646970; --line: #dcdcde; --bg: #f6f7f7; --card: #fff;
  --ok: #00743c; --bad: #b32d2e; --warn: #996800; --accent: #2271b1; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: baseline; gap: 12px; padding: 10px 20px; background: var(--card); border-bottom: 1px solid var(--line); }
header h1 { margin: 0; font-size: 20px; }
.spacer { flex: 1; }
main, #login { max-width: 1200px; margin: 0 auto; padding: 8px 20px 20px; }
section { margin-top: 18px; }
h2 { font-size: 16px; margin: 0 0 8px; }
h3 { font-size: 14px; margin: 0; }
.muted { color: var(--muted); }
.error { color: var(--bad); }
code { background: #f0f0f1; padding: 1px 4px; border-radius: 3px; }
form#login-form { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 16px; max-width: 520px; margin-top: 40px; }
form#login-form input { width: 100%; padding: 6px 8px; margin: 6px 0 10px; font: inherit; }
#run-form { display: flex; flex-wrap: wrap; gap: 10px 16px; align-items: center; background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
select, input, button { font: inherit; }
button { padding: 4px 14px; border: 1px solid var(--accent); background: var(--accent); color: #fff; border-radius: 4px; cursor: pointer; }
button:disabled { opacity: .5; cursor: default; }
button.plain { background: none; color: var(--accent); border: none; padding: 0; }
#forget { background: none; color: var(--accent); }
table { border-collapse: collapse; width: 100%; background: var(--card); }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; white-space: nowrap; }
td.facts { white-space: normal; }
th { font-weight: 600; color: var(--muted); font-size: 12px; }
td.output { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; white-space: pre-wrap; word-break: break-word; max-width: 560px; }
.zone { background: var(--card); border: 1px solid var(--line); border-radius: 6px; margin-bottom: 12px; overflow: hidden; }
.zone-head { display: flex; gap: 16px; align-items: baseline; padding: 8px 10px; border-bottom: 1px solid var(--line); background: #fbfbfb; }
.badge { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px; background: #f0f0f1; }
.s-alive, .s-ok { background: #d7f0df; color: var(--ok); }
.s-suspect, .s-waiting, .s-running { background: #fcf3cf; color: var(--warn); }
.s-dead, .s-failed, .s-error, .s-denied, .s-missing, .s-cancelled { background: #f7dcdc; color: var(--bad); }
.s-left { background: #ececec; color: var(--muted); }
.fact { display: inline-block; margin: 0 4px 2px 0; padding: 0 5px; border: 1px solid var(--line); border-radius: 3px; font-size: 12px; font-family: ui-monospace, Menlo, monospace; }
.job { background: var(--card); border: 1px solid var(--line); border-radius: 6px; margin-bottom: 8px; }
.job summary { padding: 6px 10px; cursor: pointer; }
.job table { border-top: 1px solid var(--line); }
footer { max-width: 1200px; margin: 0 auto; padding: 10px 20px 30px; font-size: 12px; }
footer a { color: inherit; }
`

/** The page's script. `BUILTINS` is filled in from the node's list of built-in actions. */
export const WEB_APP_JS = String.raw`(function () {
'use strict';
var BUILTINS = __BUILTINS__;
var KEY = 'mesh.apiToken';
var REFRESH_MS = 5000;
var token = sessionStorage.getItem(KEY);
var zoneNames = [];
var localRuns = [];
var jobDetails = {};
var jobOpen = {};
var refreshing = false;
var timer = 0;
var running = false;

function $(id) { return document.getElementById(id); }
function h(tag, props, children) {
  var e = document.createElement(tag);
  if (props) Object.keys(props).forEach(function (k) {
    var v = props[k];
    if (v === undefined || v === null) return;
    if (k === 'text') e.textContent = String(v);
    else if (k === 'cls') e.className = v;
    else e.setAttribute(k, String(v));
  });
  (children || []).forEach(function (c) {
    if (c === null || c === undefined) return;
    e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
  });
  return e;
}
function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); return e; }
function badge(text) { return h('span', { cls: 'badge s-' + String(text).replace(/[^a-z-]/g, ''), text: text }); }
function ago(ms) {
  var s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 90) return s + ' s ago';
  if (s < 5400) return Math.round(s / 60) + ' min ago';
  return Math.round(s / 3600) + ' h ago';
}
function duration(ms) {
  if (ms === null || ms === undefined) return '';
  return ms < 1000 ? ms + ' ms' : (ms / 1000).toFixed(1) + ' s';
}

function showLogin(message) {
  token = null;
  sessionStorage.removeItem(KEY);
  clearTimeout(timer);
  $('app').hidden = true;
  $('forget').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('token').value = '';
  $('token').focus();
}

function ApiError(status, body) {
  var e = body && body.error ? body.error : { code: 'http-' + status, message: 'HTTP ' + status };
  this.status = status;
  this.code = e.code;
  this.message = e.message;
}

function call(method, path, body) {
  var headers = { authorization: 'Bearer ' + token };
  if (body !== undefined) headers['content-type'] = 'application/json';
  return fetch(path, {
    method: method, headers: headers, cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body)
  }).then(function (res) {
    if (res.status === 401) {
      showLogin('The agent refused this token. Print the right one with mesh api token.');
      throw new ApiError(401, null);
    }
    return res;
  });
}
function getJson(path) {
  return call('GET', path).then(function (res) {
    return res.json().catch(function () { return null; }).then(function (body) {
      if (!res.ok) throw new ApiError(res.status, body);
      return body;
    });
  });
}

// --- members by zone ------------------------------------------------------------------------------
function renderZones(members, zones) {
  var byZone = {};
  zones.forEach(function (z) { byZone[z.zone] = { view: z, members: [] }; });
  members.forEach(function (m) {
    if (!byZone[m.zone]) byZone[m.zone] = { view: null, members: [] };
    byZone[m.zone].members.push(m);
  });
  var names = Object.keys(byZone).sort();
  var box = clear($('zones'));
  if (names.length === 0) box.appendChild(h('p', { cls: 'muted', text: 'No members known yet.' }));
  names.forEach(function (name) {
    var entry = byZone[name];
    var z = entry.view;
    var lease = !z || z.authority === null ? 'no authority known'
      : 'authority ' + z.authority + ' · epoch ' + z.epoch + ' · lease ' +
        (z.leaseRemainingMs === null ? 'unknown here' : duration(z.leaseRemainingMs) + ' left');
    var rows = entry.members.sort(function (a, b) { return a.name < b.name ? -1 : 1; }).map(function (m) {
      var facts = Object.keys(m.facts || {}).sort().map(function (k) {
        return h('span', { cls: 'fact', text: k + '=' + m.facts[k] });
      });
      return h('tr', { 'data-member': m.name }, [
        h('td', { text: m.name }),
        h('td', null, [badge(m.state)]),
        h('td', { text: (m.roles || []).join(', ') }),
        h('td', { text: ago(m.lastSeenMs) }),
        h('td', { cls: 'facts' }, facts)
      ]);
    });
    box.appendChild(h('div', { cls: 'zone', 'data-zone': name }, [
      h('div', { cls: 'zone-head' }, [h('h3', { text: name }), h('span', { cls: 'muted', text: lease }),
        h('span', { cls: 'muted', text: entry.members.length + ' member' + (entry.members.length === 1 ? '' : 's') })]),
      h('table', null, [
        h('thead', null, [h('tr', null, ['Name', 'State', 'Roles', 'Last seen', 'Facts'].map(function (t) { return h('th', { text: t }); }))]),
        h('tbody', null, rows)
      ])
    ]));
  });
  var select = $('run-zone');
  var chosen = select.value;
  var zoneList = zones.map(function (z) { return z.zone; });
  if (zoneList.join('\n') !== zoneNames.join('\n')) {
    zoneNames = zoneList;
    while (select.options.length > 1) select.remove(1);
    zoneNames.forEach(function (n) { select.appendChild(h('option', { value: n, text: n })); });
    select.value = zoneNames.indexOf(chosen) >= 0 ? chosen : '';
  }
}

// --- jobs -----------------------------------------------------------------------------------------
function repliesTable(replies, expected, missing) {
  var rows = [];
  (replies || []).forEach(function (r) {
    rows.push(h('tr', { 'data-node': r.node }, [
      h('td', { text: r.node }), h('td', { text: r.zone }), h('td', null, [badge(r.status)]),
      h('td', { text: r.exitCode === null || r.exitCode === undefined ? '' : r.exitCode }),
      h('td', { text: duration(r.durationMs) }),
      h('td', { cls: 'output', text: (r.output || '').trim() || r.reason || '' })
    ]));
  });
  (missing || []).forEach(function (n) {
    rows.push(h('tr', { 'data-node': n }, [h('td', { text: n }), h('td'), h('td', null, [badge('missing')]), h('td'), h('td'), h('td')]));
  });
  return h('table', null, [
    h('thead', null, [h('tr', null, ['Node', 'Zone', 'Status', 'Exit', 'Time', 'Output'].map(function (t) { return h('th', { text: t }); }))]),
    h('tbody', null, rows)
  ]);
}

function jobLine(action, filter, atMs, counts) {
  return action + (filter ? ' on ' + filter : ' everywhere') + ' · ' + ago(atMs) + ' · ' +
    counts.ok + ' ok, ' + counts.failed + ' failed, ' + counts.missing + ' missing' + (counts.running ? ' · running' : '');
}

function renderJobs(list) {
  var box = clear($('jobs'));
  if (list === null) {
    box.appendChild(h('p', { cls: 'muted', text: 'This agent keeps no job list; runs from this page:' }));
    if (localRuns.length === 0) box.appendChild(h('p', { cls: 'muted', text: 'None yet.' }));
    localRuns.forEach(function (run) {
      var d = h('details', { cls: 'job', open: '' }, [h('summary', { text: jobLine(run.action, run.filter, run.atMs, run.counts) })]);
      d.appendChild(repliesTable(run.replies, run.expected, run.missing));
      box.appendChild(d);
    });
    return;
  }
  if (list.length === 0) box.appendChild(h('p', { cls: 'muted', text: 'No jobs yet.' }));
  list.forEach(function (job, i) {
    var d = h('details', { cls: 'job', 'data-job': job.job }, [
      h('summary', { text: jobLine(job.action, job.filter, job.atMs, job) })
    ]);
    var show = function () {
      var cached = jobDetails[job.job];
      if (cached) { d.appendChild(repliesTable(cached.replies, cached.expected, cached.missing)); return; }
      getJson('/v1/jobs/' + encodeURIComponent(job.job)).then(function (r) {
        if (!r.running) jobDetails[job.job] = r;
        d.appendChild(repliesTable(r.replies, r.expected, r.missing));
      }, function (e) { d.appendChild(h('p', { cls: 'error', text: e.message })); });
    };
    // Results of jobs issued here are local, so the newest are open; others are looked up in the mesh,
    // so only on request. What the user opened or closed stays so across refreshes.
    var open = jobOpen[job.job] !== undefined ? jobOpen[job.job] : job.issuedHere && i < 5;
    var loaded = false;
    if (open) { d.open = true; loaded = true; show(); }
    d.addEventListener('toggle', function () {
      jobOpen[job.job] = d.open;
      if (d.open && !loaded) { loaded = true; show(); }
    });
    box.appendChild(d);
  });
}

// --- refresh --------------------------------------------------------------------------------------
function refresh() {
  if (refreshing || !token) return;
  refreshing = true;
  Promise.all([getJson('/v1/members'), getJson('/v1/zones')]).then(function (r) {
    renderZones(r[0], r[1]);
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    return getJson('/v1/jobs?limit=10').then(function (j) { renderJobs(j.jobs || []); }, function (e) {
      if (e.status === 501 || e.status === 404) renderJobs(null);
      else if (e.status !== 401) $('jobs').textContent = e.message;
    });
  }).catch(function (e) {
    if (e.status !== 401) $('updated').textContent = 'cannot reach the agent: ' + e.message;
  }).then(function () {
    refreshing = false;
    clearTimeout(timer);
    if (token) timer = setTimeout(refresh, document.hidden ? REFRESH_MS * 6 : REFRESH_MS);
  });
}

function start() {
  $('login').hidden = true;
  $('app').hidden = false;
  $('forget').hidden = false;
  getJson('/v1/status').then(function (s) {
    $('node').textContent = s.name + ' (zone ' + s.zone + ') · certificate until ' + new Date(s.certificateExpiresAtMs).toLocaleDateString();
  }, function () {});
  refresh();
}

// --- run an action --------------------------------------------------------------------------------
function runAction(event) {
  event.preventDefault();
  if (running) return;
  var action = $('run-action').value;
  var filter = {};
  var zone = $('run-zone').value;
  var nodes = $('run-node').value.trim();
  if (zone) filter.zone = zone;
  if (nodes) filter.node = nodes;
  if ($('run-once').checked) filter.once = true;
  var timeoutMs = Number($('run-timeout').value);
  var table = $('run-replies');
  var body = clear(table.tBodies[0]);
  var rows = {};
  var status = $('run-status');
  var started = Date.now();
  var run = { action: action, filter: [zone && 'zone=' + zone, nodes && 'node=' + nodes].filter(Boolean).join(' '),
    atMs: started, replies: [], expected: [], missing: [], counts: { ok: 0, failed: 0, missing: 0, running: true } };
  table.hidden = false;
  status.className = 'muted';
  status.textContent = 'Publishing ' + action + '…';
  running = true;
  $('run-button').disabled = true;

  function row(node) {
    if (rows[node]) return rows[node];
    var cells = [h('td', { text: node }), h('td'), h('td', null, [badge('waiting')]), h('td'), h('td'), h('td', { cls: 'output' })];
    var tr = h('tr', { 'data-node': node }, cells);
    body.appendChild(tr);
    rows[node] = cells;
    return cells;
  }
  function onEvent(e) {
    if (e.event === 'published') {
      run.expected = e.expected || [];
      run.expected.forEach(row);
      status.textContent = 'Waiting for ' + run.expected.length + ' node' + (run.expected.length === 1 ? '' : 's') + '…';
    } else if (e.event === 'output') {
      var out = row(e.node)[5];
      out.textContent = (out.textContent + e.data).slice(-8192);
      clear(row(e.node)[2]).appendChild(badge('running'));
    } else if (e.event === 'done' && e.reply) {
      var r = e.reply;
      var cells = row(r.node);
      cells[1].textContent = r.zone;
      clear(cells[2]).appendChild(badge(r.status));
      cells[3].textContent = r.exitCode === null || r.exitCode === undefined ? '' : r.exitCode;
      cells[4].textContent = duration(r.durationMs);
      cells[5].textContent = (r.output || '').trim() || r.reason || '';
      run.replies.push(r);
      if (r.expected !== false) { if (r.status === 'ok') run.counts.ok++; else run.counts.failed++; }
    } else if (e.event === 'summary') {
      run.missing = e.missing || [];
      run.missing.forEach(function (n) { clear(row(n)[2]).appendChild(badge('missing')); });
      run.counts.missing = run.missing.length;
      var answered = (e.expected || []).length - run.missing.length;
      status.className = e.failed.length === 0 && run.missing.length === 0 && (e.expected || []).length > 0 ? '' : 'error';
      status.textContent = (e.expected || []).length === 0 ? 'No alive member matches.'
        : answered + ' of ' + e.expected.length + ' answered in ' + duration(Date.now() - started) +
          (e.failed.length ? '; failed: ' + e.failed.join(', ') : '') +
          (run.missing.length ? '; missing: ' + run.missing.join(', ') : '');
    } else if (e.event === 'error') {
      status.className = 'error';
      status.textContent = e.error ? e.error.message : 'failed';
    }
  }
  call('POST', '/v1/exec', { action: action, args: [], filter: filter, timeoutMs: timeoutMs }).then(function (res) {
    if (!res.ok) return res.json().catch(function () { return null; }).then(function (b) { throw new ApiError(res.status, b); });
    var reader = res.body.getReader();
    var decoder = new TextDecoder();
    var buffered = '';
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) return;
        buffered += decoder.decode(chunk.value, { stream: true });
        var lines = buffered.split('\n');
        buffered = lines.pop();
        lines.forEach(function (line) { if (line.trim()) onEvent(JSON.parse(line)); });
        return pump();
      });
    }
    return pump();
  }).catch(function (e) {
    if (e.status === 401) return;
    status.className = 'error';
    status.textContent = e.message || String(e);
  }).then(function () {
    running = false;
    run.counts.running = false;
    localRuns.unshift(run);
    localRuns.length = Math.min(localRuns.length, 10);
    $('run-button').disabled = false;
    refresh();
  });
}

document.addEventListener('DOMContentLoaded', function () {
  var select = $('run-action');
  BUILTINS.forEach(function (a) { select.appendChild(h('option', { value: a, text: a })); });
  $('login-form').addEventListener('submit', function (event) {
    event.preventDefault();
    token = $('token').value.trim();
    if (!token) return;
    sessionStorage.setItem(KEY, token);
    start();
  });
  $('forget').addEventListener('click', function () { showLogin(''); });
  $('run-form').addEventListener('submit', runAction);
  document.addEventListener('visibilitychange', function () { if (!document.hidden && token) refresh(); });
  if (token) start(); else showLogin('');
});
})();
`.replace('__BUILTINS__', JSON.stringify(BUILTIN_ACTIONS))
