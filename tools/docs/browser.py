"""Load pages in headless Chromium (Debian's `chromium`) over the DevTools protocol and check what a reader would see.

The site is served from a local HTTP server (so pages load as they would from a host, and every request for a missing
file is seen); one Chromium loads each page in turn. For each page:
- it loads (load event within the time limit) with no JavaScript exception, no console error and no failed request
  for a local file (404s included);
- every <img> has loaded and decoded: `naturalWidth > 0` (images hosted elsewhere, e.g. the Colab badge, cannot load
  offline and are counted, not failed);
- every local link resolves: the page it names is served (HTTP 200) and the anchor it names exists in that page;
- the page shows no error: no Python traceback among the rendered outputs, and it has a title (h1) and the sidebar.
Needs the `websocket-client` package (a dependency of JupyterLab; in the `dev` extra).
"""
import functools, json, os, shutil, subprocess, tempfile, threading, time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.request import urlopen

CANDIDATES = ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable', 'chrome')

def find_chromium():
    "Path of a Chromium/Chrome executable: $CHROMIUM, or the first of CANDIDATES on PATH; None if there is none."
    if os.environ.get('CHROMIUM'): return shutil.which(os.environ['CHROMIUM']) or os.environ['CHROMIUM']
    return next((shutil.which(c) for c in CANDIDATES if shutil.which(c)), None)

class _Handler(SimpleHTTPRequestHandler):
    missing = None
    def log_message(self, *args): pass
    def send_error(self, code, message=None, explain=None):
        if code == 404: self.missing.append(self.path)
        super().send_error(code, message, explain)

class Site:
    "Serve folder `root` on 127.0.0.1 (a free port) in a thread; `.missing` lists the paths that got a 404."
    def __init__(self, root):
        self.missing = []
        handler = type('H', (_Handler,), dict(missing=self.missing))
        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(handler, directory=str(root)))
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}/'
    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start(); return self
    def __exit__(self, *exc): self.httpd.shutdown(); self.httpd.server_close()

class Chromium:
    "A headless Chromium with one page target, driven over the DevTools protocol."
    def __init__(self, exe, timeout=30):
        import websocket                                    # websocket-client
        self.profile = tempfile.mkdtemp(prefix='docs-check-chromium-')
        args = [exe, '--headless', '--disable-gpu', '--no-first-run', '--no-default-browser-check', '--mute-audio',
                '--disable-extensions', '--disable-background-networking', '--disable-dev-shm-usage',
                '--remote-debugging-port=0', '--remote-allow-origins=*', f'--user-data-dir={self.profile}',
                '--window-size=1280,900', 'about:blank']
        if hasattr(os, 'geteuid') and os.geteuid() == 0: args.insert(1, '--no-sandbox')   # root (CI containers)
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port_file, t0 = Path(self.profile)/'DevToolsActivePort', time.time()
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.time() - t0 > timeout:
                err = self.proc.stderr.read().decode(errors='replace')[-2000:] if self.proc.poll() is not None else ''
                self.close(); raise RuntimeError(f'{exe} did not start its DevTools endpoint within {timeout} s. {err}')
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.load(urlopen(f'http://127.0.0.1:{port}/json/list', timeout=timeout))
        ws_url = next(t['webSocketDebuggerUrl'] for t in targets if t.get('type') == 'page')
        self.ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True, enable_multithread=True)
        self.next_id, self.events = 0, []
        for domain in ('Page', 'Runtime', 'Log', 'Network'): self.send(f'{domain}.enable')

    def send(self, method, timeout=60, **params):
        "Call `method`; return its result (events that arrive meanwhile are kept in `.events`)."
        self.next_id += 1; mid = self.next_id
        self.ws.send(json.dumps(dict(id=mid, method=method, params=params)))
        t0 = time.time()
        while True:
            msg = self._recv(t0 + timeout)
            if msg is None: raise TimeoutError(f'{method}: no answer within {timeout} s')
            if msg.get('id') == mid:
                if 'error' in msg: raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get('result', {})
            if 'method' in msg: self.events.append(msg)

    def _recv(self, deadline):
        import websocket
        while time.time() < deadline:
            self.ws.settimeout(max(0.05, deadline - time.time()))
            try: return json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException: return None
        return None

    def wait_event(self, method, timeout):
        "Wait for event `method`; True when it came."
        t0 = time.time()
        while True:
            for e in self.events:
                if e['method'] == method: return True
            msg = self._recv(t0 + timeout)
            if msg is None: return False
            if 'method' in msg: self.events.append(msg)

    def close(self):
        try: self.ws.close()
        except Exception: pass
        if getattr(self, 'proc', None) and self.proc.poll() is None:
            self.proc.terminate()
            try: self.proc.wait(10)
            except subprocess.TimeoutExpired: self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

# Runs in the page once it has loaded; returns a JSON string.
PAGE_CHECK_JS = r"""
(async () => {
  const imgs = [...document.images];
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.addEventListener('load', r);
    i.addEventListener('error', r); setTimeout(r, 15000); })));
  await Promise.all(imgs.map(i => (i.naturalWidth > 0 && i.decode) ? i.decode().catch(() => null) : null));
  const local = u => u.origin === location.origin || u.protocol === 'data:';   // data: figures are the page's own
  const img = imgs.map(i => ({src: (i.currentSrc || i.src).slice(0, 120), local: local(new URL(i.currentSrc || i.src)),
                              w: i.naturalWidth, h: i.naturalHeight, shown: i.getBoundingClientRect().width}));
  const links = [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))
                 .filter(h => !/^(mailto|javascript):/.test(h));
  const bad_links = [], pages = {};
  for (const h of links) {
    const u = new URL(h, location.href);
    if (!local(u)) continue;
    const page = u.origin + u.pathname;
    if (!(page in pages)) {
      if (page === location.origin + location.pathname) pages[page] = {ok: true, doc: document};
      else {
        try { const r = await fetch(page);
              pages[page] = {ok: r.ok, status: r.status,
                             doc: r.ok ? new DOMParser().parseFromString(await r.text(), 'text/html') : null}; }
        catch (e) { pages[page] = {ok: false, status: String(e)}; }
      }
    }
    const p = pages[page];
    if (!p.ok) { bad_links.push(`${h}: ${p.status}`); continue; }
    const raw = u.hash.slice(1), frag = decodeURIComponent(raw);   // as browsers do: the raw fragment, then decoded
    const found = f => p.doc.getElementById(f) || p.doc.getElementsByName(f).length;
    if (raw && !(found(raw) || found(frag))) bad_links.push(`${h}: no anchor "${frag}"`);
  }
  const text = document.body.innerText;
  const tb = text.indexOf('Traceback (most recent call last)');
  return JSON.stringify({img, n_links: links.length, n_local_links: links.filter(h => local(new URL(h, location.href))).length,
    bad_links, title: (document.querySelector('main h1') || {}).textContent || '',
    sidebar: document.querySelectorAll('#sidebar a').length,
    traceback: tb < 0 ? '' : text.slice(Math.max(0, tb - 100), tb + 300)});
})()
"""

def check_pages(site_dir, pages, exe=None, timeout=30, log=print):
    """Load each page of `pages` ([page file name]) from `site_dir` in headless Chromium. Returns (problems, stats)."""
    exe = exe or find_chromium()
    problems, stats = [], dict(pages=0, images=0, external_images=0, local_links=0, seconds=0.0)
    t_start = time.time()
    with Site(site_dir) as site:
        browser = Chromium(exe, timeout=timeout)
        try:
            for name in pages:
                t0 = time.time(); browser.events.clear()
                url = site.url + name
                nav = browser.send('Page.navigate', url=url)
                if nav.get('errorText'): problems.append(f"{name}: did not load: {nav['errorText']}"); continue
                if not browser.wait_event('Page.loadEventFired', timeout):
                    problems.append(f'{name}: no load event within {timeout} s'); continue
                res = browser.send('Runtime.evaluate', expression=PAGE_CHECK_JS, awaitPromise=True, returnByValue=True,
                                   timeout=timeout + 20)
                if 'exceptionDetails' in res:
                    problems.append(f"{name}: the page check failed: {res['exceptionDetails'].get('text')}"); continue
                r = json.loads(res['result']['value'])
                page_problems = []
                for e in browser.events:
                    m, p = e['method'], e.get('params', {})
                    if m == 'Runtime.exceptionThrown':
                        d = p.get('exceptionDetails', {})
                        page_problems.append(f"JavaScript exception: {d.get('exception', {}).get('description') or d.get('text')}")
                    elif m == 'Runtime.consoleAPICalled' and p.get('type') == 'error':
                        page_problems.append('console error: ' + ' '.join(str(a.get('value', a.get('description', ''))) for a in p.get('args', [])))
                    elif m == 'Log.entryAdded' and p.get('entry', {}).get('level') == 'error':
                        en = p['entry']
                        if not (en.get('url') or '').startswith(site.url): continue   # offline: hosted elsewhere
                        page_problems.append(f"browser error: {en.get('text')} {en.get('url', '')}")
                for i in r['img']:
                    if i['local'] and not i['w'] > 0: page_problems.append(f"image did not load: {i['src']}")
                page_problems += [f'broken link {b}' for b in r['bad_links']]
                if r['traceback']: page_problems.append(f"shows a Python traceback: ...{r['traceback']!r}")
                if not r['title'].strip(): page_problems.append('no title (h1)')
                if r['sidebar'] < len(pages): page_problems.append(f"sidebar has {r['sidebar']} links for {len(pages)} pages")
                problems += [f'{name}: {x}' for x in dict.fromkeys(page_problems)]
                n_ext = sum(not i['local'] for i in r['img'])
                stats['pages'] += 1; stats['images'] += len(r['img']) - n_ext; stats['external_images'] += n_ext
                stats['local_links'] += r['n_local_links']
                log(f"  {name:22} {'ok  ' if not page_problems else 'FAIL'} {len(r['img']) - n_ext:3d} figures, "
                    f"{r['n_local_links']:3d} local links, {time.time() - t0:4.1f} s")
        finally:
            browser.close()
        problems += [f'request for a missing file: {m}' for m in dict.fromkeys(site.missing) if m != '/favicon.ico']
    stats['seconds'] = round(time.time() - t_start, 1)
    return problems, stats
