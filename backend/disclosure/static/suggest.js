// Search-as-you-type for inputs marked data-suggest="<datalist id>": while a person
// types, the few best matches of the site's search (GET /api/merchants/suggest) fill
// the input's datalist, each as its credit code labelled with the shop's name.
// Choosing one puts the code in the input (the search page opens a code's shop page;
// the complaint form takes the code). No inline script; works without it too.
(function () {
  'use strict';
  var WAIT_MS = 150;

  function attach(input) {
    var list = document.getElementById(input.getAttribute('data-suggest'));
    if (!list) return;
    var timer = null;
    var asked = '';
    var controller = null;

    function fill(items) {
      while (list.firstChild) list.removeChild(list.firstChild);
      items.forEach(function (m) {
        var option = document.createElement('option');
        option.value = m.uscc;
        option.label = m.name + '（' + m.region_name + '）';
        option.textContent = m.name + '（' + m.region_name + '）';
        list.appendChild(option);
      });
    }

    function ask() {
      var q = input.value.trim();
      if (q === asked) return;
      asked = q;
      if (!q) { fill([]); return; }
      if (controller) controller.abort();
      controller = typeof AbortController === 'function' ? new AbortController() : null;
      fetch('/api/merchants/suggest?q=' + encodeURIComponent(q), {
        headers: { Accept: 'application/json' },
        signal: controller ? controller.signal : undefined
      }).then(function (r) {
        return r.ok ? r.json() : { items: [] };
      }).then(function (data) {
        if (input.value.trim() === q) fill(data.items || []);
      }).catch(function () { /* aborted or offline: keep what is shown */ });
    }

    input.addEventListener('input', function () {
      clearTimeout(timer);
      timer = setTimeout(ask, WAIT_MS);
    });
  }

  function start() {
    var inputs = document.querySelectorAll('input[data-suggest]');
    for (var i = 0; i < inputs.length; i++) attach(inputs[i]);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
