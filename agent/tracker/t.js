/* Avila t.js: no cookies; README "Tracking with t.js" */
(function (w, d) {
  var s = d.currentScript, id = s && s.getAttribute('data-id');
  if (!id) return;
  var api = s.getAttribute('data-api') || new URL(s.src, location.href).origin;
  var last;
  function send(name, params) {
    var b = JSON.stringify({m: id, n: name, u: location.href, r: d.referrer, t: d.title,
      l: navigator.language, s: screen.width + 'x' + screen.height, p: params});
    try {
      fetch(api + '/api/event', {method: 'POST', body: b, keepalive: true, credentials: 'omit',
        headers: {'Content-Type': 'text/plain'}}).catch(function () {});
    } catch (e) {
      navigator.sendBeacon && navigator.sendBeacon(api + '/api/event', b);
    }
  }
  function page() {
    var p = location.pathname + location.search;
    if (last === p) return;
    last = p;
    send('page_view');
  }
  ['pushState', 'replaceState'].forEach(function (k) {
    var f = history[k];
    history[k] = function () { f.apply(this, arguments); page(); };
  });
  w.addEventListener('popstate', page);
  d.addEventListener('click', function (e) {
    var a = e.target.closest && e.target.closest('a[href]');
    if (a && a.host && a.host !== location.host) {
      send('click', {link_url: a.href.split('?')[0], link_domain: a.hostname, outbound: 'true'});
    }
  }, true);
  var q = w.avila && w.avila.q;
  w.avila = function (name, params) { send(name, params); };
  page();
  (q || []).forEach(function (a) { send(a[0], a[1]); });
})(window, document);
