// Domain Monitor web UI. Plain JavaScript, no build step, nothing loaded from elsewhere.
//
// Safety rule: everything that comes from the API (and so from DNS, TLS, RDAP or WHOIS
// servers) is put into the page as text: elements are made with h() below, which only ever
// appends text nodes for strings. Nothing here assigns innerHTML, outerHTML or
// insertAdjacentHTML, and the Content-Security-Policy allows no inline script.
'use strict';

const state = {
  signedIn: false,
  who: null,
  view: null, // {onEvent(ev)} of the page shown
  liveAbort: null,
  liveStatus: 'off',
};

// ---- DOM helpers ----

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of kids.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c)); // strings become text nodes
  }
  return el;
}

// Appends like h() does: arrays flattened, null and false skipped, strings as text.
function put(el, ...kids) {
  for (const c of kids.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

function main() {
  return document.getElementById('main');
}

function sr(text) {
  return h('span', {class: 'sr'}, text);
}

let toastTimer = null;
function toast(text) {
  const t = document.getElementById('toast');
  t.textContent = text;
  t.classList.add('show');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => t.classList.remove('show'), 5000);
}

// ---- formatting ----

function fmtTime(iso) {
  if (!iso) return h('span', {class: 'muted'}, 'never');
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return String(iso);
  const s = Math.round((Date.now() - t) / 1000);
  let rel;
  const a = Math.abs(s);
  if (a < 60) rel = 'just now';
  else if (a < 3600) rel = `${Math.round(a / 60)} min`;
  else if (a < 86400) rel = `${Math.round(a / 3600)} h`;
  else rel = `${Math.round(a / 86400)} d`;
  if (a >= 60) rel = s >= 0 ? `${rel} ago` : `in ${rel}`;
  return h('time', {datetime: iso, title: new Date(t).toISOString()}, rel);
}

function daysLeft(iso) {
  if (!iso) return null;
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return null;
  return Math.floor((t - Date.now()) / 86400000);
}

// Days to an expiry, coloured as it nears; the words say it too, not the colour alone.
function expiryCell(iso) {
  const d = daysLeft(iso);
  if (d === null) return h('span', {class: 'muted'}, iso === undefined ? 'n/a' : '—');
  let cls = 'ok';
  let text = `${d} days`;
  if (d < 0) {
    cls = 'bad';
    text = `expired ${-d} days ago`;
  } else if (d <= 7) {
    cls = 'bad';
    text = `${d} days (soon)`;
  } else if (d <= 30) {
    cls = 'warn';
    text = `${d} days`;
  }
  return h('span', {class: `badge ${cls}`, title: iso}, text);
}

function statusBadge(d) {
  if (d.enabled === false) return h('span', {class: 'badge muted'}, 'paused');
  const s = d.status || 'pending';
  const cls = s === 'ok' ? 'ok' : s === 'error' ? 'bad' : 'muted';
  return h('span', {class: `badge ${cls}`}, s);
}

function domainHref(name) {
  return '/domains/' + encodeURIComponent(name);
}

// ---- API ----

class ApiError extends Error {
  constructor(status, data) {
    super(problemText(data) || `HTTP ${status}`);
    this.status = status;
    this.data = data;
  }
}

function problemText(data) {
  if (!data || typeof data !== 'object') return '';
  let t = data.detail || data.title || '';
  if (Array.isArray(data.errors) && data.errors.length && !data.detail)
    t = data.errors.map((e) => `${e.field}: ${e.detail}`).join('; ');
  return String(t);
}

async function api(method, path, body) {
  const opt = {method, credentials: 'same-origin', headers: {Accept: 'application/json'}};
  if (body !== undefined) {
    opt.headers['Content-Type'] = 'application/json';
    opt.body = JSON.stringify(body);
  }
  const r = await fetch(path, opt);
  let data = null;
  const ct = r.headers.get('Content-Type') || '';
  if (r.status !== 204 && ct.includes('json')) {
    try {
      data = await r.json();
    } catch (e) {
      data = null;
    }
  }
  if (r.status === 401 && path !== '/api/v1/session') {
    signedOut('Your session has ended. Sign in again.');
  }
  return {status: r.status, ok: r.ok, data};
}

async function apiOk(method, path, body) {
  const r = await api(method, path, body);
  if (!r.ok) throw new ApiError(r.status, r.data);
  return r.data;
}

// A section fed by an API that may not exist on this server: a 404 for the route itself
// (not for the domain) reads "not available" and the rest of the page goes on.
function notAvailable(what) {
  return h('p', {class: 'notice'}, `${what} is not available on this server.`);
}

function errorBox(err) {
  return h('p', {class: 'error', role: 'alert'}, err instanceof Error ? err.message : String(err));
}

// ---- navigation ----

function go(path, replace) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  route(true);
}

document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey)
    return;
  const a = e.target.closest('a');
  if (!a || a.target || a.origin !== location.origin) return;
  if (!a.pathname.startsWith('/') || a.pathname.startsWith('/api/') || a.pathname.startsWith('/ui/'))
    return;
  e.preventDefault();
  if (a.pathname + a.search !== location.pathname + location.search) go(a.pathname + a.search);
});

window.addEventListener('popstate', () => route(true));

function setTitle(t) {
  document.title = t ? `${t} · Domain Monitor` : 'Domain Monitor';
}

function focusHeading() {
  const h1 = main().querySelector('h1');
  if (h1) {
    h1.setAttribute('tabindex', '-1');
    h1.focus();
  }
}

function markNav() {
  for (const a of document.querySelectorAll('#nav a')) {
    const here =
      (a.getAttribute('href') === '/' &&
        (location.pathname === '/' || location.pathname.startsWith('/domains/'))) ||
      (a.getAttribute('href') !== '/' && location.pathname.startsWith(a.getAttribute('href')));
    if (here) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function route(moveFocus) {
  state.view = null;
  if (!state.signedIn) {
    renderSignIn();
    return;
  }
  markNav();
  const p = location.pathname;
  let pending;
  if (p === '/') pending = renderDomains();
  else if (p.startsWith('/domains/') && p.length > 9) {
    let name;
    try {
      name = decodeURIComponent(p.slice(9));
    } catch (e) {
      name = p.slice(9);
    }
    pending = renderDomain(name);
  } else if (p === '/alerts') pending = renderAlerts();
  else {
    setTitle('Not found');
    put(clear(main()), 
      h('h1', {}, 'Not found'),
      h('p', {}, 'Nothing here. ', h('a', {href: '/'}, 'Back to the domains')),
    );
  }
  if (pending) await pending;
  if (moveFocus) focusHeading();
}

// ---- session ----

function renderSignIn(message) {
  setTitle('Sign in');
  document.getElementById('nav').hidden = true;
  const err = h('p', {class: 'error', role: 'alert', id: 'signin-error'}, message || '');
  if (!message) err.hidden = true;
  const input = h('input', {
    id: 'api-key',
    name: 'key',
    type: 'password',
    autocomplete: 'current-password',
    required: true,
    spellcheck: 'false',
    'aria-describedby': 'api-key-help',
  });
  const form = h(
    'form',
    {class: 'card narrow', id: 'signin'},
    h('h1', {}, 'Sign in'),
    h('label', {for: 'api-key'}, 'API key'),
    input,
    h(
      'p',
      {class: 'help', id: 'api-key-help'},
      'A key made with ',
      h('code', {}, 'domainmon keys create'),
      ', or the admin key printed at first start.',
    ),
    err,
    h('button', {type: 'submit'}, 'Sign in'),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.hidden = true;
    const r = await api('POST', '/api/v1/session', {key: input.value.trim()});
    if (r.ok) {
      input.value = '';
      signedIn(r.data);
      route(true);
    } else {
      err.textContent =
        r.status === 401 ? 'That API key is not valid.' : problemText(r.data) || `HTTP ${r.status}`;
      err.hidden = false;
      input.focus();
    }
  });
  put(clear(main()), form);
  input.focus();
}

function signedIn(who) {
  state.signedIn = true;
  state.who = who;
  document.getElementById('nav').hidden = false;
  document.getElementById('who').textContent = who ? `${who.key_name} (${who.scope})` : '';
  startLive();
}

function signedOut(message) {
  if (!state.signedIn) return;
  state.signedIn = false;
  state.who = null;
  stopLive();
  renderSignIn(message);
}

document.getElementById('signout').addEventListener('click', async () => {
  await api('DELETE', '/api/v1/session');
  signedOut();
  const m = document.getElementById('signin-error');
  if (m) {
    m.textContent = 'Signed out.';
    m.className = 'notice';
    m.hidden = false;
  }
});

// ---- live events (GET /api/v1/events, Server-Sent Events over fetch) ----

function setLive(s) {
  state.liveStatus = s;
  const el = document.getElementById('live');
  el.textContent = {on: 'Live', off: 'Live: reconnecting', unavailable: 'Live: not available'}[s] || s;
  el.className = `live ${s}`;
}

function stopLive() {
  if (state.liveAbort) state.liveAbort.abort();
  state.liveAbort = null;
}

function startLive() {
  stopLive();
  const ctrl = new AbortController();
  state.liveAbort = ctrl;
  liveLoop(ctrl);
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

async function liveLoop(ctrl) {
  let lastId = null;
  let backoff = 1000;
  while (!ctrl.signal.aborted) {
    try {
      const headers = {Accept: 'text/event-stream'};
      if (lastId) headers['Last-Event-ID'] = lastId;
      const r = await fetch('/api/v1/events', {
        headers,
        signal: ctrl.signal,
        credentials: 'same-origin',
        cache: 'no-store',
      });
      if (r.status === 401) {
        signedOut('Your session has ended. Sign in again.');
        return;
      }
      if (r.status === 404) {
        setLive('unavailable');
        return;
      }
      if (!r.ok || !r.body) throw new Error(`HTTP ${r.status}`);
      setLive('on');
      backoff = 1000;
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = parseEvent(block);
          if (ev) {
            if (ev.id) lastId = ev.id;
            dispatchEvent(ev);
          }
        }
      }
    } catch (e) {
      if (ctrl.signal.aborted) return;
    }
    setLive('off');
    await sleep(backoff, ctrl.signal);
    backoff = Math.min(backoff * 2, 30000);
  }
}

function parseEvent(block) {
  let event = 'message';
  let id = null;
  const data = [];
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const c = line.indexOf(':');
    const field = c < 0 ? line : line.slice(0, c);
    let value = c < 0 ? '' : line.slice(c + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'id') id = value;
    else if (field === 'data') data.push(value);
  }
  if (!data.length && event === 'message') return null;
  let obj = null;
  try {
    obj = data.length ? JSON.parse(data.join('\n')) : null;
  } catch (e) {
    obj = null;
  }
  return {event, id, data: obj};
}

function dispatchEvent(ev) {
  const d = ev.data || {};
  if (ev.event.startsWith('change.')) {
    const what = ev.event === 'change.tls' ? 'certificate' : ev.event === 'change.registration'
      ? 'registration' : ev.event.slice('change.dns.'.length) + ' records';
    toast(`${d.before === null ? 'First seen' : 'Changed'}: ${d.domain || '?'} ${what}`);
  }
  if (state.view && state.view.onEvent) state.view.onEvent(ev);
}

function debounce(fn, ms) {
  let t = null;
  return () => {
    clearTimeout(t);
    t = setTimeout(fn, ms);
  };
}

// ---- the domains page ----

function renderDomains() {
  setTitle('Domains');
  const m = clear(main());
  const view = {cursors: [null], page: 0, q: ''};
  state.view = view;

  const addMsg = h('p', {class: 'result', role: 'status', 'aria-live': 'polite'});
  const addInput = h('input', {id: 'add-name', name: 'name', required: true, autocomplete: 'off',
    spellcheck: 'false', placeholder: 'example.com'});
  const addForm = h('form', {class: 'inline', id: 'add-one'},
    h('label', {for: 'add-name'}, 'Domain'), addInput, h('button', {type: 'submit'}, 'Add'));
  addForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    addMsg.textContent = '';
    const name = addInput.value.trim();
    const r = await api('POST', '/api/v1/domains', {name});
    if (r.ok) {
      addInput.value = '';
      addMsg.className = 'result ok';
      addMsg.append('Added ', h('a', {href: domainHref(r.data.name)}, r.data.unicode_name || r.data.name), '.');
      load();
    } else {
      addMsg.className = 'result error';
      addMsg.textContent = problemText(r.data) || `HTTP ${r.status}`;
    }
  });

  const bulkText = h('textarea', {id: 'add-many', rows: 5, spellcheck: 'false',
    placeholder: 'example.org\nexample.net'});
  const bulkProgress = h('progress', {max: 1, value: 0, hidden: true, 'aria-label': 'Import progress'});
  const bulkSummary = h('p', {role: 'status', 'aria-live': 'polite'});
  const bulkList = h('ul', {class: 'results'});
  const bulkForm = h('form', {id: 'add-bulk'},
    h('label', {for: 'add-many'}, 'Domains, one per line (or separated by spaces or commas)'),
    bulkText, h('button', {type: 'submit'}, 'Add all'), bulkProgress, bulkSummary, bulkList);
  bulkForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const names = bulkText.value.split(/[\s,;]+/).filter(Boolean);
    if (!names.length) return;
    clear(bulkList);
    const chunk = 500;
    let done = 0;
    const tally = {added: 0, exists: 0, invalid: 0};
    bulkProgress.hidden = false;
    bulkProgress.max = names.length;
    bulkProgress.value = 0;
    for (let i = 0; i < names.length; i += chunk) {
      const part = names.slice(i, i + chunk);
      const r = await api('POST', '/api/v1/domains/import', {names: part});
      if (!r.ok) {
        bulkList.append(h('li', {class: 'bad'}, `Names ${i + 1}–${i + part.length}: `,
          problemText(r.data) || `HTTP ${r.status}`));
        done += part.length;
      } else {
        for (const x of r.data.results || []) {
          tally[x.status] = (tally[x.status] || 0) + 1;
          const mark = x.status === 'added' ? '+' : x.status === 'exists' ? '=' : '!';
          bulkList.append(h('li', {class: x.status === 'invalid' ? 'bad' : x.status},
            h('span', {'aria-hidden': 'true', class: 'mark'}, mark), ' ', String(x.name), ': ', x.status,
            x.detail ? ` (${x.detail})` : ''));
        }
        done += part.length;
      }
      bulkProgress.value = done;
      bulkSummary.textContent = `${done} of ${names.length} sent: ${tally.added} added, ` +
        `${tally.exists} already there, ${tally.invalid} invalid.`;
    }
    load();
  });

  const search = h('input', {id: 'search', type: 'search', autocomplete: 'off'});
  const tableWrap = h('div', {class: 'table-wrap', 'aria-live': 'polite'});
  const prev = h('button', {type: 'button', disabled: true}, 'Previous page');
  const next = h('button', {type: 'button', disabled: true}, 'Next page');
  const pageInfo = h('span', {class: 'muted'});

  put(m,
    h('h1', {}, 'Domains'),
    h('section', {class: 'card', 'aria-labelledby': 'add-h'}, h('h2', {id: 'add-h'}, 'Add'), addForm, addMsg,
      h('details', {}, h('summary', {}, 'Add many at once'), bulkForm)),
    h('section', {'aria-labelledby': 'list-h'},
      h('h2', {id: 'list-h'}, 'All domains'),
      h('div', {class: 'inline'}, h('label', {for: 'search'}, 'Search'), search),
      tableWrap,
      h('div', {class: 'pager'}, prev, pageInfo, next)),
  );

  async function load() {
    const params = new URLSearchParams({limit: '50'});
    if (view.q) params.set('q', view.q);
    const cur = view.cursors[view.page];
    if (cur) params.set('cursor', cur);
    let data;
    try {
      data = await apiOk('GET', '/api/v1/domains?' + params);
    } catch (err) {
      put(clear(tableWrap), errorBox(err));
      return;
    }
    if (state.view !== view) return;
    view.names = new Set(data.domains.map((d) => d.name));
    view.cursors[view.page + 1] = data.next_cursor;
    prev.disabled = view.page === 0;
    next.disabled = !data.next_cursor;
    pageInfo.textContent = `Page ${view.page + 1}`;
    if (!data.domains.length) {
      put(clear(tableWrap), h('p', {class: 'muted'}, view.q ? 'No domain matches.' : 'No domains yet: add one above.'));
      return;
    }
    const rows = data.domains.map((d) => h('tr', {},
      h('th', {scope: 'row'}, h('a', {href: domainHref(d.name)}, d.unicode_name || d.name),
        d.unicode_name && d.unicode_name !== d.name ? h('div', {class: 'muted small'}, d.name) : null),
      h('td', {}, statusBadge(d)),
      h('td', {}, fmtTime(d.last_checked_at)),
      h('td', {}, fmtTime(d.last_changed_at)),
      h('td', {}, expiryCell(d.tls_expires_at)),
      h('td', {}, expiryCell(d.registration_expires_at)),
      h('td', {class: 'err'}, d.status_error || ''),
    ));
    put(clear(tableWrap), h('table', {id: 'domains'},
      h('caption', {class: 'sr'}, 'Domains, their state and expiry'),
      h('thead', {}, h('tr', {},
        h('th', {scope: 'col'}, 'Domain'), h('th', {scope: 'col'}, 'Status'),
        h('th', {scope: 'col'}, 'Last check'), h('th', {scope: 'col'}, 'Last change'),
        h('th', {scope: 'col'}, 'Certificate expires'), h('th', {scope: 'col'}, 'Registration expires'),
        h('th', {scope: 'col'}, 'Errors'))),
      h('tbody', {}, rows)));
  }

  const reload = debounce(load, 400);
  search.addEventListener('input', debounce(() => {
    view.q = search.value.trim();
    view.page = 0;
    view.cursors = [null];
    load();
  }, 250));
  prev.addEventListener('click', () => {
    if (view.page > 0) view.page--;
    load();
  });
  next.addEventListener('click', () => {
    if (view.cursors[view.page + 1]) view.page++;
    load();
  });
  // Checks that change nothing send no event: the times and states are read again now
  // and then while the list is shown.
  const timer = setInterval(() => {
    if (state.view !== view) clearInterval(timer);
    else load();
  }, 15000);
  view.onEvent = (ev) => {
    if (ev.event === 'reset' || ev.event.startsWith('domain.') ||
        (ev.data && view.names && view.names.has(ev.data.domain)))
      reload();
  };
  return load();
}

// ---- one domain ----

function valueList(values, cls) {
  if (!values || !values.length) return h('span', {class: 'muted'}, 'none');
  return h('ul', {class: `values ${cls || ''}`}, values.map((v) => h('li', {}, String(v))));
}

// Removed and added values, marked by sign and words as well as colour.
function dnsDiff(c) {
  const list = h('ul', {class: 'diff'});
  if (c.before === null || c.before === undefined) {
    list.append(h('li', {class: 'note'}, 'First seen'));
    for (const v of c.after || []) list.append(h('li', {class: 'add'}, h('span', {class: 'mark', 'aria-hidden': 'true'}, '+'), sr('added: '), String(v)));
  } else {
    for (const v of c.removed || []) list.append(h('li', {class: 'del'}, h('span', {class: 'mark', 'aria-hidden': 'true'}, '−'), sr('removed: '), h('del', {}, String(v))));
    for (const v of c.added || []) list.append(h('li', {class: 'add'}, h('span', {class: 'mark', 'aria-hidden': 'true'}, '+'), sr('added: '), h('ins', {}, String(v))));
  }
  if (c.status && c.status !== 'ok') list.append(h('li', {class: 'note'}, `Answer: ${c.status}`));
  return list;
}

function fieldDiff(fields) {
  const list = h('ul', {class: 'diff'});
  for (const [name, ch] of Object.entries(fields || {})) {
    const show = (v) => v === null || v === undefined ? '(none)' : typeof v === 'object' ? JSON.stringify(v) : String(v);
    list.append(h('li', {class: 'del'}, h('span', {class: 'mark', 'aria-hidden': 'true'}, '−'), sr('removed: '), `${name}: `, h('del', {}, show(ch.before))));
    list.append(h('li', {class: 'add'}, h('span', {class: 'mark', 'aria-hidden': 'true'}, '+'), sr('added: '), `${name}: `, h('ins', {}, show(ch.after))));
  }
  return list;
}

const CERT_FIELDS = ['subject', 'sans', 'issuer', 'serial', 'sha256', 'key_type', 'key_bits',
  'signature_algorithm', 'not_before', 'not_after'];

function certDiff(before, after) {
  const fields = {};
  for (const k of CERT_FIELDS) {
    const b = before ? before[k] : null;
    const a = after ? after[k] : null;
    if (JSON.stringify(b) !== JSON.stringify(a)) fields[k] = {before: b, after: a};
  }
  return fieldDiff(fields);
}

function certTable(c) {
  const rows = CERT_FIELDS.filter((k) => c[k] !== undefined).map((k) =>
    h('tr', {}, h('th', {scope: 'row'}, k.replace(/_/g, ' ')),
      h('td', {}, Array.isArray(c[k]) ? valueList(c[k]) : String(c[k] === null ? '—' : c[k]))));
  if (c.not_after) rows.push(h('tr', {}, h('th', {scope: 'row'}, 'expires in'), h('td', {}, expiryCell(c.not_after))));
  return h('table', {class: 'kv'}, h('tbody', {}, rows));
}

function kvTable(pairs) {
  return h('table', {class: 'kv'}, h('tbody', {}, pairs.map(([k, v]) =>
    h('tr', {}, h('th', {scope: 'row'}, k), h('td', {}, v === null || v === undefined || v === '' ? h('span', {class: 'muted'}, '—') : v)))));
}

async function renderDomain(name) {
  setTitle(name);
  const m = clear(main());
  const view = {name};
  state.view = view;
  const head = h('div');
  const actions = h('div', {class: 'actions'});
  const actMsg = h('p', {role: 'status', 'aria-live': 'polite', class: 'result'});
  const records = h('div', {class: 'table-wrap', id: 'records'});
  const tls = h('div', {id: 'tls'});
  const reg = h('div', {id: 'registration'});
  const timeline = h('ol', {class: 'timeline', id: 'timeline'});
  const timelineMsg = h('div');
  put(m,
    h('p', {class: 'crumb'}, h('a', {href: '/'}, '← Domains')),
    head, actions, actMsg,
    h('section', {'aria-labelledby': 'rec-h'}, h('h2', {id: 'rec-h'}, 'Records'), records),
    h('section', {'aria-labelledby': 'tl-h'}, h('h2', {id: 'tl-h'}, 'Changes'), timelineMsg, timeline),
    h('div', {class: 'two'},
      h('section', {'aria-labelledby': 'tls-h'}, h('h2', {id: 'tls-h'}, 'Certificate'), tls),
      h('section', {'aria-labelledby': 'reg-h'}, h('h2', {id: 'reg-h'}, 'Registration'), reg)),
  );
  const path = '/api/v1/domains/' + encodeURIComponent(name);

  const r = await api('GET', path);
  if (state.view !== view) return;
  if (!r.ok) {
    head.append(h('h1', {}, name), errorBox(r.status === 404 ? 'No such domain.' : problemText(r.data) || `HTTP ${r.status}`));
    return;
  }
  let d = r.data;
  view.name = d.name;

  function drawHead() {
    setTitle(d.unicode_name || d.name);
    put(clear(head), 
      h('h1', {}, d.unicode_name || d.name, ' ', statusBadge(d)),
      d.unicode_name && d.unicode_name !== d.name ? h('p', {class: 'muted'}, d.name) : null,
      kvTable([
        ['Last check', fmtTime(d.last_checked_at)],
        ['Next check', d.enabled === false ? 'paused' : fmtTime(d.next_check_at)],
        ['Last change', fmtTime(d.last_changed_at)],
        ['Interval', `${d.interval} s`],
        ['Record types', (d.record_types || []).join(', ')],
        ['Certificate expires', expiryCell(d.tls_expires_at)],
        ['Registration expires', expiryCell(d.registration_expires_at)],
        ['Error', d.status_error ? h('span', {class: 'err'}, d.status_error) : null],
      ]),
    );
    put(clear(actions), 
      h('button', {type: 'button', id: 'scan', onclick: scan}, 'Scan now'),
      h('button', {type: 'button', id: 'pause', onclick: togglePause}, d.enabled === false ? 'Resume' : 'Pause'),
      h('button', {type: 'button', id: 'delete', class: 'danger', onclick: confirmDelete}, 'Delete…'),
    );
  }

  async function refreshHead() {
    const x = await api('GET', path);
    if (x.ok && state.view === view) {
      d = x.data;
      const focused = document.activeElement && document.activeElement.id;
      drawHead();
      if (focused && ['scan', 'pause', 'delete'].includes(focused)) document.getElementById(focused).focus();
    }
  }

  async function scan() {
    const x = await api('POST', path + '/scan');
    actMsg.textContent = x.ok ? 'Scan requested: results appear here when it is done.' : problemText(x.data) || `HTTP ${x.status}`;
  }

  async function togglePause() {
    const enable = d.enabled === false;
    const x = await api('PATCH', path, {enabled: enable});
    if (x.ok) {
      d = x.data;
      drawHead();
      document.getElementById('pause').focus();
      actMsg.textContent = enable ? 'Resumed.' : 'Paused: no checks until resumed.';
    } else {
      actMsg.textContent = problemText(x.data) || `HTTP ${x.status}`;
    }
  }

  function confirmDelete() {
    const dlg = h('dialog', {'aria-labelledby': 'del-h', id: 'confirm-delete'},
      h('h2', {id: 'del-h'}, `Delete ${d.unicode_name || d.name}?`),
      h('p', {}, 'Its records and its whole history go with it. This cannot be undone.'),
      h('div', {class: 'actions'},
        h('button', {type: 'button', class: 'danger', id: 'confirm-delete-yes', onclick: async () => {
          const x = await api('DELETE', path);
          dlg.close();
          if (x.ok || x.status === 404) {
            toast(`Deleted ${d.name}`);
            go('/');
          } else {
            actMsg.textContent = problemText(x.data) || `HTTP ${x.status}`;
          }
        }}, 'Delete'),
        h('button', {type: 'button', onclick: () => dlg.close()}, 'Cancel')));
    dlg.addEventListener('close', () => {
      dlg.remove();
      const b = document.getElementById('delete');
      if (b) b.focus();
    });
    document.body.append(dlg);
    dlg.showModal();
    dlg.querySelector('button:not(.danger)').focus();
  }

  async function loadRecords() {
    const x = await api('GET', path + '/records');
    if (state.view !== view) return;
    if (!x.ok) {
      put(clear(records), errorBox(problemText(x.data) || `HTTP ${x.status}`));
      return;
    }
    const rows = x.data.records || [];
    if (!rows.length) {
      put(clear(records), h('p', {class: 'muted'}, 'Not checked yet: records appear after the first scan.'));
      return;
    }
    put(clear(records), h('table', {},
      h('caption', {class: 'sr'}, 'Current records by type'),
      h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Type'), h('th', {scope: 'col'}, 'Values'),
        h('th', {scope: 'col'}, 'TTL'), h('th', {scope: 'col'}, 'Status'), h('th', {scope: 'col'}, 'Changed'))),
      h('tbody', {}, rows.map((rs) => h('tr', {'data-type': rs.type},
        h('th', {scope: 'row'}, rs.type),
        h('td', {}, valueList(rs.values), rs.error ? h('div', {class: 'err'}, rs.error) : null),
        h('td', {}, String(rs.ttl)),
        h('td', {}, h('span', {class: `badge ${rs.status === 'ok' ? 'ok' : rs.status === 'error' ? 'bad' : 'muted'}`}, rs.status)),
        h('td', {}, fmtTime(rs.changed_at)))))));
  }

  async function loadTls() {
    const x = await api('GET', path + '/tls');
    if (state.view !== view) return;
    // The domain was found just before: a 404 here is the route missing on this server.
    if (x.status === 404) {
      put(clear(tls), notAvailable('Certificate data'));
      return false;
    }
    if (!x.ok) {
      put(clear(tls), errorBox(problemText(x.data) || `HTTP ${x.status}`));
      return true;
    }
    const eps = x.data.endpoints || [];
    if (!eps.length) {
      put(clear(tls), h('p', {class: 'muted'}, 'Not checked yet.'));
      return true;
    }
    put(clear(tls), eps.map((ep) => h('div', {class: 'endpoint'},
      h('h3', {}, `${ep.address || ''} port ${ep.port}`, ' ', h('span', {class: `badge ${ep.status === 'ok' ? 'ok' : 'bad'}`}, ep.status)),
      ep.error ? h('p', {class: 'err'}, ep.error) : null,
      kvTable([['Protocol', ep.protocol], ['Chain', ep.chain_valid === undefined ? null : ep.chain_valid ? 'valid' : `not valid${ep.chain_error ? ': ' + ep.chain_error : ''}`]]),
      ep.certificate ? certTable(ep.certificate) : null)));
    return true;
  }

  async function loadRegistration() {
    const x = await api('GET', path + '/registration');
    if (state.view !== view) return;
    if (x.status === 404) {
      put(clear(reg), notAvailable('Registration data'));
      return false;
    }
    if (!x.ok) {
      put(clear(reg), errorBox(problemText(x.data) || `HTTP ${x.status}`));
      return true;
    }
    const g = x.data;
    const registrant = g.registrant && typeof g.registrant === 'object'
      ? Object.entries(g.registrant).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join('; ') : null;
    put(clear(reg), kvTable([
      ['Status', h('span', {class: `badge ${g.status === 'ok' ? 'ok' : g.status === 'error' ? 'bad' : 'muted'}`}, g.status || '?')],
      ['Error', g.error ? h('span', {class: 'err'}, g.error) : null],
      ['Registrable domain', g.registrable_domain],
      ['Source', g.source],
      ['Registrar', g.registrar],
      ['Created', g.created_at],
      ['Updated', g.updated_at],
      ['Expires', g.expires_at ? h('span', {}, g.expires_at, ' ', expiryCell(g.expires_at)) : null],
      ['Name servers', g.name_servers && g.name_servers.length ? valueList(g.name_servers) : null],
      ['Statuses', g.statuses && g.statuses.length ? valueList(g.statuses) : null],
      ['DNSSEC', g.dnssec === undefined || g.dnssec === null ? null : String(g.dnssec)],
      ['Registrant', registrant],
      ['Checked', fmtTime(g.checked_at)],
    ]));
    return true;
  }

  async function loadTimeline() {
    const [dns, t, g] = await Promise.all([
      api('GET', path + '/history?limit=100'),
      api('GET', path + '/tls/history?limit=100'),
      api('GET', path + '/registration/history?limit=100'),
    ]);
    if (state.view !== view) return;
    const items = [];
    const notes = [];
    if (dns.ok) {
      // A domain's first check records every type at once: one entry for all of them.
      const first = new Map();
      for (const c of dns.data.changes || []) {
        if (c.before !== null && c.before !== undefined) {
          items.push({at: c.observed_at, kind: `DNS ${c.type}`, cls: 'dns', body: dnsDiff(c)});
        } else {
          if (!first.has(c.observed_at)) first.set(c.observed_at, []);
          first.get(c.observed_at).push(c);
        }
      }
      for (const [at, cs] of first) {
        cs.sort((a, b) => a.type.localeCompare(b.type));
        const list = h('ul', {class: 'diff'});
        for (const c of cs) {
          put(list, h('li', {class: 'type'}, c.type, c.status && c.status !== 'ok' ? h('span', {class: 'muted'}, ` (${c.status})`) : null));
          for (const v of c.after || []) put(list, h('li', {class: 'add'}, h('span', {class: 'mark', 'aria-hidden': 'true'}, '+'), sr('added: '), String(v)));
        }
        items.push({at, kind: `DNS: first seen (${cs.map((c) => c.type).join(', ')})`, cls: 'dns', body: list});
      }
    }
    else notes.push(errorBox(problemText(dns.data) || `HTTP ${dns.status}`));
    if (t.ok) for (const c of t.data.changes || []) items.push({at: c.observed_at, kind: `Certificate, port ${c.port}`, cls: 'tls', body: certDiff(c.before, c.after)});
    else if (t.status === 404) notes.push(notAvailable('Certificate history'));
    if (g.ok) for (const c of g.data.changes || []) items.push({at: c.observed_at, kind: 'Registration', cls: 'reg', body: fieldDiff(c.fields)});
    else if (g.status === 404) notes.push(notAvailable('Registration history'));
    items.sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
    put(clear(timelineMsg), notes);
    put(clear(timeline), (items.length ? items.map((it) => h('li', {class: it.cls},
      h('div', {class: 'when'}, fmtTime(it.at), h('span', {class: 'muted small'}, ' ', it.at)),
      h('div', {class: 'kind'}, it.kind), it.body)) : [h('li', {class: 'muted'}, 'No changes recorded yet.')]));
    if (dns.ok && dns.data.next_cursor) timeline.append(h('li', {class: 'muted'}, 'Older DNS changes: ', h('code', {}, `GET ${path}/history?cursor=…`)));
  }

  drawHead();
  await Promise.all([loadRecords(), loadTimeline(), loadTls(), loadRegistration()]);

  const refresh = debounce(() => {
    refreshHead();
    loadRecords();
    loadTimeline();
  }, 300);
  view.onEvent = (ev) => {
    const dn = ev.data && ev.data.domain;
    if (ev.event === 'reset' || dn === view.name) {
      if (ev.event === 'domain.removed' && dn === view.name) {
        put(clear(actMsg), 'This domain has been deleted.');
        return;
      }
      refresh();
      if (ev.event === 'change.tls') loadTls();
      if (ev.event === 'change.registration') loadRegistration();
    }
  };
}

// ---- alerts ----

const ALERT_EVENTS = ['change.dns', 'change.tls', 'change.registration', 'tls.expiring',
  'registration.expiring', 'check.failing'];

function ruleList(data) {
  if (Array.isArray(data)) return data;
  if (!data) return [];
  return data.alerts || data.rules || [];
}

async function renderAlerts() {
  setTitle('Alerts');
  const m = clear(main());
  const view = {};
  state.view = view;
  const listWrap = h('div', {class: 'table-wrap', id: 'rules'});
  const formWrap = h('div');
  const deliveries = h('section', {'aria-labelledby': 'dl-h', id: 'deliveries', hidden: true});
  m.append(h('h1', {}, 'Alerts'),
    h('section', {'aria-labelledby': 'rules-h'}, h('h2', {id: 'rules-h'}, 'Rules'), listWrap),
    formWrap, deliveries);

  const r = await api('GET', '/api/v1/alerts');
  if (state.view !== view) return;
  if (r.status === 404) {
    put(clear(listWrap), h('p', {class: 'notice', id: 'alerts-unavailable'},
      'Alerts are not available on this server: it has no alerts API yet.'));
    return;
  }
  if (!r.ok) {
    put(clear(listWrap), errorBox(problemText(r.data) || `HTTP ${r.status}`));
    return;
  }

  async function loadList() {
    const x = await api('GET', '/api/v1/alerts');
    if (state.view !== view) return;
    if (!x.ok) {
      put(clear(listWrap), errorBox(problemText(x.data) || `HTTP ${x.status}`));
      return;
    }
    drawList(ruleList(x.data));
  }

  function drawList(rules) {
    if (!rules.length) {
      put(clear(listWrap), h('p', {class: 'muted'}, 'No rules yet.'));
      return;
    }
    put(clear(listWrap), h('table', {},
      h('caption', {class: 'sr'}, 'Alert rules'),
      h('thead', {}, h('tr', {}, ['Name', 'Channel', 'Target', 'Events', 'Domains', 'Actions'].map((t) => h('th', {scope: 'col'}, t)))),
      h('tbody', {}, rules.map((rule) => h('tr', {},
        h('th', {scope: 'row'}, String(rule.name || rule.id)),
        h('td', {}, String(rule.channel || '')),
        h('td', {class: 'wrap'}, String(rule.target || '')),
        h('td', {}, (rule.events || []).join(', ')),
        h('td', {}, rule.domains && rule.domains.length ? rule.domains.join(', ') : 'all'),
        h('td', {class: 'row-actions'},
          h('button', {type: 'button', onclick: () => drawForm(rule)}, 'Edit', sr(` ${rule.name}`)),
          h('button', {type: 'button', onclick: () => testRule(rule)}, 'Test', sr(` ${rule.name}`)),
          h('button', {type: 'button', onclick: () => showDeliveries(rule)}, 'Deliveries', sr(` of ${rule.name}`)),
          h('button', {type: 'button', class: 'danger', onclick: () => deleteRule(rule)}, 'Delete', sr(` ${rule.name}`))))))));
  }

  async function testRule(rule) {
    const x = await api('POST', `/api/v1/alerts/${encodeURIComponent(rule.id)}/test`);
    toast(x.ok ? `Test message queued for ${rule.name}` : x.status === 404 ? 'Testing is not available on this server.' : problemText(x.data) || `HTTP ${x.status}`);
    if (x.ok) showDeliveries(rule);
  }

  async function deleteRule(rule) {
    if (!window.confirm(`Delete the rule ${rule.name}?`)) return;
    const x = await api('DELETE', `/api/v1/alerts/${encodeURIComponent(rule.id)}`);
    if (!x.ok && x.status !== 404) toast(problemText(x.data) || `HTTP ${x.status}`);
    loadList();
  }

  async function showDeliveries(rule) {
    deliveries.hidden = false;
    put(clear(deliveries), h('h2', {id: 'dl-h'}, `Deliveries of ${rule.name}`));
    const x = await api('GET', `/api/v1/alerts/${encodeURIComponent(rule.id)}/deliveries`);
    if (x.status === 404) {
      deliveries.append(notAvailable('The delivery log'));
      return;
    }
    if (!x.ok) {
      deliveries.append(errorBox(problemText(x.data) || `HTTP ${x.status}`));
      return;
    }
    const list = x.data.deliveries || [];
    if (!list.length) {
      deliveries.append(h('p', {class: 'muted'}, 'Nothing delivered yet.'));
      return;
    }
    deliveries.append(h('div', {class: 'table-wrap'}, h('table', {},
      h('thead', {}, h('tr', {}, ['Event', 'Status', 'Attempts', 'Last error', 'Next attempt', 'Delivered'].map((t) => h('th', {scope: 'col'}, t)))),
      h('tbody', {}, list.map((dv) => h('tr', {},
        h('td', {}, typeof dv.event === 'object' && dv.event ? String(dv.event.type || dv.event.id || JSON.stringify(dv.event)) : String(dv.event || '')),
        h('td', {}, h('span', {class: `badge ${dv.status === 'delivered' ? 'ok' : dv.status === 'failed' ? 'bad' : 'warn'}`}, dv.status)),
        h('td', {}, String(dv.attempts ?? '')),
        h('td', {class: 'err'}, dv.last_error || ''),
        h('td', {}, dv.next_attempt_at ? fmtTime(dv.next_attempt_at) : '—'),
        h('td', {}, dv.delivered_at ? fmtTime(dv.delivered_at) : '—')))))));
  }

  function drawForm(rule) {
    const editing = !!rule;
    const v = rule || {};
    const f = (id, label, input, help) => h('div', {class: 'field'}, h('label', {for: id}, label), input,
      help ? h('p', {class: 'help'}, help) : null);
    const name = h('input', {id: 'rule-name', required: true, value: v.name || ''});
    const channel = h('select', {id: 'rule-channel'}, ['webhook', 'email', 'sms'].map((c) =>
      h('option', {value: c, selected: v.channel === c}, c)));
    const target = h('input', {id: 'rule-target', required: true, value: v.target || '',
      placeholder: 'https://hooks.example/x, ops@example.com or +15550100'});
    const events = h('fieldset', {}, h('legend', {}, 'Events'), ALERT_EVENTS.map((e) => h('label', {class: 'check'},
      h('input', {type: 'checkbox', value: e, checked: (v.events || ['change.dns']).includes(e)}), ' ', e)));
    const domains = h('input', {id: 'rule-domains', value: (v.domains || []).join(', '), placeholder: 'empty: every domain'});
    const secret = h('input', {id: 'rule-secret', value: '', autocomplete: 'off'});
    const msg = h('div', {role: 'status', 'aria-live': 'polite'});
    const form = h('form', {class: 'card', id: 'rule-form'},
      h('h2', {}, editing ? `Edit ${v.name}` : 'New rule'),
      f('rule-name', 'Name', name),
      f('rule-channel', 'Channel', channel),
      f('rule-target', 'Target', target, 'Webhook URL, email address or phone number'),
      events,
      f('rule-domains', 'Domains', domains, 'Names separated by commas; empty for every domain'),
      f('rule-secret', 'Webhook secret', secret, editing ? 'Empty: keep the current secret' : 'Empty: one is generated and shown once'),
      msg,
      h('div', {class: 'actions'}, h('button', {type: 'submit'}, editing ? 'Save rule' : 'Create rule'),
        editing ? h('button', {type: 'button', onclick: () => drawForm(null)}, 'Cancel') : null));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clear(msg);
      const body = {
        name: name.value.trim(),
        channel: channel.value,
        target: target.value.trim(),
        events: [...events.querySelectorAll('input:checked')].map((i) => i.value),
      };
      const ds = domains.value.split(/[\s,;]+/).filter(Boolean);
      if (ds.length || editing) body.domains = ds.length ? ds : null;
      if (secret.value.trim()) body.secret = secret.value.trim();
      if (editing && body.domains === null) delete body.domains;
      const x = editing
        ? await api('PATCH', `/api/v1/alerts/${encodeURIComponent(v.id)}`, body)
        : await api('POST', '/api/v1/alerts', body);
      if (x.ok) {
        msg.append(h('p', {class: 'result ok'}, editing ? 'Saved.' : 'Created.'));
        if (x.data && x.data.secret && !editing)
          msg.append(h('p', {}, 'Signing secret (shown once): ', h('code', {}, String(x.data.secret))));
        if (editing) drawForm(null);
        loadList();
        return;
      }
      if (x.status === 404 && !editing) {
        msg.append(notAvailable('Creating alert rules'));
        return;
      }
      msg.append(h('p', {class: 'error', role: 'alert'}, problemText(x.data) || `HTTP ${x.status}`));
      const field = x.data && x.data.errors && x.data.errors[0] && x.data.errors[0].field;
      const el = field && form.querySelector(`#rule-${field}`);
      if (el) el.focus();
    });
    put(clear(formWrap), form);
    if (editing) name.focus();
  }

  drawList(ruleList(r.data));
  drawForm(null);
}

// ---- start ----

(async function start() {
  let r;
  try {
    r = await api('GET', '/api/v1/session');
  } catch (e) {
    put(clear(main()), errorBox('The service does not answer.'));
    return;
  }
  if (r.ok) {
    signedIn(r.data);
    route(false);
  } else {
    renderSignIn();
  }
})();
