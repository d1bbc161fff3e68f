/*
 * 双随机抽查复核 — re-runs a random-inspection draw in the visitor's browser.
 *
 * An independent implementation of docs/draws.md (the byte-exact specification of
 * the selection), using only WebCrypto SHA-256 (through verify.js) and the chain
 * read over standard JSON-RPC. From the published draw (GET /api/draws/{id},
 * /snapshot, /recusals) and the MeteringLedger contract it checks that the
 * draw.committed record is the on-chain drawId, that the published snapshot,
 * inspector directory and recusal pairs give the committed roots, that the
 * randomness is SHA-256(seed ‖ blockhash(targetBlock)) for the committed seed,
 * and that re-running the selection gives exactly the published plan.
 */
(function () {
  'use strict';

  var V = window.HMVerify;
  // keccak256("draw(bytes32)")[0:4]; tests/disclosure check it against web3.py and the ABI.
  var SELECTOR_DRAW = '0x629374ab';
  var TIERS = ['A', 'B', 'C', 'D'];
  var USCC_RE = /^[0-9A-HJ-NPQRTUWXY]{18}$/;
  var INSPECTOR_RE = /^[A-Za-z0-9_-]{1,64}$/;
  var REGION_RE = /^[0-9]{6}$/;
  var SECTOR_RE = /^[a-z_]{1,32}$/;
  var CHUNK = 2048;
  var enc = new TextEncoder();

  function fail(message, incomplete) { return new V.VerifyError(message, incomplete); }

  function hex(b) { return V.bytesToHex(b); }

  /* SHA-256 of many inputs, a chunk at a time (WebCrypto works off the main thread). */
  async function sha256All(inputs) {
    var out = new Array(inputs.length);
    for (var i = 0; i < inputs.length; i += CHUNK) {
      var part = await Promise.all(inputs.slice(i, i + CHUNK).map(V.sha256));
      for (var j = 0; j < part.length; j++) out[i + j] = part[j];
    }
    return out;
  }

  /* RFC 9162 §2.1.1 root over leaf hashes (pair left to right, carry an odd last node up). */
  async function rootOf(leaves) {
    if (leaves.length === 0) return V.sha256(new Uint8Array(0));
    var level = leaves;
    while (level.length > 1) {
      var inputs = [];
      for (var i = 0; i + 1 < level.length; i += 2) inputs.push(V.concat([new Uint8Array([1]), level[i], level[i + 1]]));
      var next = await sha256All(inputs);
      if (level.length % 2) next.push(level[level.length - 1]);
      level = next;
    }
    return level[0];
  }

  async function leafRoot(texts) {
    var leaves = await sha256All(texts.map(function (t) { return V.concat([new Uint8Array([0]), enc.encode(t)]); }));
    return rootOf(leaves);
  }

  function ascii(a, b) { return a < b ? -1 : a > b ? 1 : 0; }

  function noRepeats(sorted, key, what) {
    for (var i = 1; i < sorted.length; i++) {
      if (key(sorted[i]) === key(sorted[i - 1])) throw fail(what + ' ' + key(sorted[i]) + ' 出现了两次');
    }
  }

  // --- §1 inputs -------------------------------------------------------------------

  async function snapshotRoot(entries) {
    entries.forEach(function (e) {
      if (!USCC_RE.test(e.uscc)) throw fail('名单中的统一社会信用代码格式不对：' + e.uscc);
      if (TIERS.indexOf(e.tier) < 0) throw fail('名单中的等级不对：' + e.tier);
      if (!REGION_RE.test(e.region_code)) throw fail('名单中的地区代码不对：' + e.region_code);
      if (!SECTOR_RE.test(e.sector)) throw fail('名单中的行业代码不对：' + e.sector);
    });
    var sorted = entries.slice().sort(function (a, b) { return ascii(a.uscc, b.uscc); });
    noRepeats(sorted, function (e) { return e.uscc; }, '统一社会信用代码');
    return leafRoot(sorted.map(function (e) { return e.uscc + '|' + e.tier + '|' + e.region_code + '|' + e.sector; }));
  }

  async function inspectorsRoot(inspectors) {
    inspectors.forEach(function (i) {
      if (!INSPECTOR_RE.test(i.id)) throw fail('检查人员编号格式不对：' + i.id);
      if (!REGION_RE.test(i.region_code)) throw fail('检查人员地区代码不对：' + i.region_code);
      if (typeof i.unit !== 'string' || !i.unit || i.unit.indexOf('|') >= 0 || i.unit.normalize('NFC') !== i.unit ||
          /[\u0000-\u001f\u007f-\u009f]/.test(i.unit)) throw fail('检查人员单位格式不对：' + i.unit);
    });
    var sorted = inspectors.slice().sort(function (a, b) { return ascii(a.id, b.id); });
    noRepeats(sorted, function (i) { return i.id; }, '检查人员编号');
    return leafRoot(sorted.map(function (i) { return i.id + '|' + i.region_code + '|' + i.unit; }));
  }

  /* pairs: array of [uscc, inspectorId], distinct. */
  async function recusalRoot(pairs) {
    var sorted = pairs.slice().sort(function (a, b) { return ascii(a[0], b[0]) || ascii(a[1], b[1]); });
    return leafRoot(sorted.map(function (p) { return p[0] + '|' + p[1]; }));
  }

  // --- §3 selection and §4 assignment --------------------------------------------------

  function tierCount(n, bp) { return Math.floor((n * bp + 9999) / 10000); }

  async function selectionKeys(randomness, usccs) {
    var keys = await sha256All(usccs.map(function (u) { return V.concat([randomness, enc.encode(u)]); }));
    return keys.map(hex);
  }

  function byKey(a, b) { return ascii(a.key, b.key) || ascii(a.id, b.id); }

  /*
   * Runs the draw: returns the plan object of docs/draws.md §5, or throws
   * {notEnough: {uscc, needed, available}}.
   */
  async function runDraw(randomness, entries, rates, inspectors, perCheck, recusals, roots) {
    TIERS.forEach(function (t) {
      if (!Number.isInteger(rates[t]) || rates[t] < 0 || rates[t] > 10000) throw fail('抽查比例不对：' + t + ' = ' + rates[t]);
    });
    if (!Number.isInteger(perCheck) || perCheck < 2) throw fail('每户检查人员至少 2 名');
    var keys = await selectionKeys(randomness, entries.map(function (e) { return e.uscc; }));
    var byTier = { A: [], B: [], C: [], D: [] };
    entries.forEach(function (e, i) { byTier[e.tier].push({ id: e.uscc, key: keys[i] }); });
    var selected = {};
    var all = [];
    TIERS.forEach(function (t) {
      var list = byTier[t].sort(byKey).slice(0, tierCount(byTier[t].length, rates[t]));
      selected[t] = list.map(function (x) { return x.id; });
      all = all.concat(list);
    });
    all.sort(byKey);
    var ids = inspectors.map(function (i) { return i.id; });
    var m = ids.length;
    var checks = all.length;
    var cap = m === 0 ? 0 : Math.floor((checks * perCheck + m - 1) / m) + 1;
    var load = {};
    ids.forEach(function (id) { load[id] = 0; });
    var recused = new Set(recusals.map(function (p) { return p[0] + '|' + p[1]; }));
    var assignments = [];
    for (var k = 0; k < all.length; k++) {
      var uscc = all[k].id;
      var akeys = await sha256All(ids.map(function (id) { return V.concat([randomness, enc.encode(uscc), enc.encode(id)]); }));
      var order = ids.map(function (id, i) { return { id: id, key: hex(akeys[i]) }; }).sort(byKey);
      var taken = [];
      var nRecused = 0;
      var nAtCap = 0;
      for (var j = 0; j < order.length && taken.length < perCheck; j++) {
        var id = order[j].id;
        if (recused.has(uscc + '|' + id)) nRecused += 1;
        else if (load[id] >= cap) nAtCap += 1;
        else taken.push(id);
      }
      if (taken.length < perCheck) {
        // docs/draws.md §4: every inspector was tried; each is taken, recused or at the cap.
        var err = fail(uscc + ' 需要 ' + perCheck + ' 名检查人员，只有 ' + taken.length + ' 名可派（'
          + nRecused + ' 名回避，' + nAtCap + ' 名已达任务上限）');
        err.notEnough = { uscc: uscc, needed: perCheck, available: taken.length,
                          recused: nRecused, at_cap: nAtCap };
        throw err;
      }
      taken.forEach(function (id) { load[id] += 1; });
      assignments.push({ uscc: uscc, inspectors: taken });
    }
    return {
      v: 1,
      randomness: hex(randomness),
      snapshot_root: roots.snapshot,
      snapshot_size: entries.length,
      rates_bp: { A: rates.A, B: rates.B, C: rates.C, D: rates.D },
      selected: selected,
      inspectors_root: roots.inspectors,
      inspector_count: m,
      recusal_root: roots.recusals,
      per_check: perCheck,
      load_cap: cap,
      assignments: assignments
    };
  }

  async function planDigest(plan) {
    return hex(await V.sha256(enc.encode(V.canonicalize(plan))));
  }

  // --- reading the service's public JSON and the chain --------------------------------

  async function getJson(path) {
    var res;
    try {
      res = await fetch(path, { headers: { Accept: 'application/json' }, cache: 'no-store' });
    } catch (e) {
      throw fail('无法读取 ' + path + '（' + e.message + '）', true);
    }
    if (!res.ok) throw fail('读取 ' + path + ' 失败：HTTP ' + res.status, true);
    return res.json();
  }

  function word(bytes, i) { return bytes.slice(32 * i, 32 * (i + 1)); }
  function wordInt(w) { return BigInt('0x' + (hex(w) || '0')); }

  async function readDraw(url, contract, drawId) {
    var data = V.hexToBytes(await V.rpc(url, 'eth_call', [{ to: contract, data: SELECTOR_DRAW + drawId }, 'latest']));
    if (data.length < 256) throw fail('合约 draw() 的返回值长度不对（' + data.length + ' 字节）');
    return {
      snapshotRoot: hex(word(data, 0)),
      seedHash: hex(word(data, 1)),
      seed: word(data, 2),
      randomness: hex(word(data, 3)),
      commitBlock: wordInt(word(data, 4)),
      targetBlock: wordInt(word(data, 5)),
      revealBlock: wordInt(word(data, 6)),
      revealed: wordInt(word(data, 7)) !== 0n
    };
  }

  /* A record listed with the draw: its bytes must hash to its id and be canonical. */
  async function record(detail, type) {
    var r = (detail.records || []).filter(function (x) { return x.type === type; })[0];
    if (!r) return null;
    var leaf = hex(await V.leafHash(enc.encode(r.canonical)));
    if (leaf !== r.record_id) throw fail(type + ' 记录的哈希 ' + leaf + ' 与记录编号 ' + r.record_id + ' 不符：记录被改动过');
    var env = JSON.parse(r.canonical);
    if (V.canonicalize(env) !== r.canonical) throw fail(type + ' 记录不是规范形式');
    if (env.type !== type) throw fail('记录 ' + leaf + ' 是 ' + env.type + '，不是 ' + type);
    env.record_id = leaf;
    return env;
  }

  function refsOf(env) { return (env.refs || []).map(function (r) { return r.record; }); }

  function same(a, b) { return V.canonicalize(a) === V.canonicalize(b); }

  // --- the checks ---------------------------------------------------------------------

  async function verifyDraw(drawId, options) {
    options = options || {};
    var onStep = options.onStep || function () {};
    var result = { verified: false, incomplete: false, reason: null, outcome: null };

    async function step(key, title, fn) {
      var s = { key: key, title: title, status: 'running', detail: '' };
      onStep(s);
      try {
        s.detail = await fn();
        s.status = 'ok';
        onStep(s);
      } catch (e) {
        s.status = 'fail';
        s.detail = e && e.message ? e.message : String(e);
        onStep(s);
        throw e;
      }
    }

    try {
      var detail, snap, rec, body, entries, inspectors, pairs, url, state, randomness;
      await step('data', '读取公开数据', async function () {
        detail = await getJson('/api/draws/' + encodeURIComponent(drawId));
        snap = await getJson('/api/draws/' + encodeURIComponent(detail.id) + '/snapshot');
        rec = await getJson('/api/draws/' + encodeURIComponent(detail.id) + '/recusals');
        return '读取了第 ' + detail.number + ' 次抽查的详情、检查对象名单（' + snap.entries.length + ' 户）和回避名单（' + rec.items.length + ' 对）。';
      });

      await step('commitment', '抽查承诺记录', async function () {
        var env = await record(detail, 'draw.committed');
        if (!env) throw fail('没有 draw.committed 记录');
        if (env.record_id !== detail.id) throw fail('draw.committed 记录是 ' + env.record_id + '，而抽查编号是 ' + detail.id);
        if (!same(detail.commitment, env.body)) throw fail('页面显示的承诺内容与 draw.committed 记录不一致');
        body = env.body;
        return 'draw.committed 记录的哈希就是抽查编号；它在随机数产生之前固定了：事项、' + body.snapshot_size + ' 户检查对象、' +
          body.inspector_count + ' 名检查人员、' + body.recusal_count + ' 对回避、抽查比例和每户 ' + body.per_check + ' 名检查人员。';
      });

      await step('snapshot', '检查对象名单', async function () {
        entries = snap.entries;
        var root = hex(await snapshotRoot(entries));
        if (root !== body.snapshot_root || entries.length !== body.snapshot_size) {
          throw fail('公开的名单（' + entries.length + ' 户）算出的默克尔根是 ' + root + '，而承诺的是 ' + body.snapshot_size +
            ' 户、根 ' + body.snapshot_root + '：名单在承诺后被改动过');
        }
        return '公开的 ' + entries.length + ' 户名单（含各户信用等级）算出承诺的默克尔根 ' + root + '。';
      });

      await step('inspectors', '检查人员名录', async function () {
        inspectors = detail.inspectors;
        var root = hex(await inspectorsRoot(inspectors));
        if (root !== body.inspectors_root || inspectors.length !== body.inspector_count) {
          throw fail('公开的名录（' + inspectors.length + ' 人）算出的根是 ' + root + '，而承诺的是 ' + body.inspectors_root);
        }
        return '公开的 ' + inspectors.length + ' 名检查人员（编号、单位）算出承诺的根。';
      });

      await step('recusals', '回避名单', async function () {
        var seen = new Set();
        pairs = [];
        rec.items.forEach(function (r) {
          var k = r.uscc + '|' + r.inspector_id;
          if (!seen.has(k)) { seen.add(k); pairs.push([r.uscc, r.inspector_id]); }
        });
        var root = hex(await recusalRoot(pairs));
        if (root !== body.recusal_root) throw fail(pairs.length + ' 对回避算出的根是 ' + root + '，而承诺的是 ' + body.recusal_root);
        var previous = {};
        rec.items.forEach(function (r) {
          if ((r.sources || []).indexOf('previous') >= 0) {
            if (!r.previous_draw) throw fail('回避 ' + r.uscc + '/' + r.inspector_id + ' 没有注明是哪次抽查');
            (previous[r.previous_draw] = previous[r.previous_draw] || []).push([r.uscc, r.inspector_id]);
          }
        });
        var ids = Object.keys(previous);
        for (var i = 0; i < ids.length; i++) {
          var other = await getJson('/api/draws/' + encodeURIComponent(ids[i]));
          var planned = new Set();
          ((other.plan || {}).assignments || []).forEach(function (a) {
            a.inspectors.forEach(function (x) { planned.add(a.uscc + '|' + x); });
          });
          previous[ids[i]].forEach(function (p) {
            if (!planned.has(p[0] + '|' + p[1])) throw fail('回避 ' + p.join('/') + ' 说上次抽查派了该检查人员，但那次的计划中没有');
          });
        }
        return pairs.length + ' 对回避（利益冲突和上次检查过的人员轮换）算出承诺的根' +
          (ids.length ? '；轮换回避与 ' + ids.length + ' 次以前抽查的计划一致。' : '。');
      });

      await step('ledger', '区块链上的承诺', async function () {
        var chain = body.chain;
        // The chain and contract are the pinned trust root's, never the service's word.
        var fp = V.pageFingerprint();
        if (!fp) throw fail('本页没有给出信任根指纹，无法确认抽查承诺所在的链和合约是官方的；请稍后再试', true);
        var tr = await V.loadTrustRoot(fp);
        var wrong = [];
        if (BigInt(chain.chain_id) !== BigInt(tr.chainId)) wrong.push('链 ' + chain.chain_id + '（信任根固定的是链 ' + tr.chainId + '）');
        if (String(chain.contract).toLowerCase() !== tr.contract.toLowerCase()) wrong.push('合约 ' + chain.contract + '（信任根固定的是合约 ' + tr.contract + '）');
        if (wrong.length) throw fail('抽查承诺所在的' + wrong.join('、') + '与本站信任根（指纹 ' + tr.fingerprint + '）不一致');
        var plan = V.nodePlan({ ledger_url: detail.chain.ledger_url }, {
          rpcUrls: V.pageRpcUrls(), allowedOrigins: V.pageAllowedOrigins(), chosenNode: V.pageChosenNode()
        });
        if (plan.refused) throw plan.refused;
        var urls = plan.urls;
        var last = null;
        for (var i = 0; i < urls.length && !url; i++) {
          try {
            var id = BigInt(await V.rpc(urls[i], 'eth_chainId', []));
            if (id === BigInt(chain.chain_id)) url = urls[i];
            else last = fail('节点 ' + urls[i] + ' 是链 ' + id + '，抽查承诺在链 ' + chain.chain_id + ' 上', true);
          } catch (e) { last = e; }
        }
        if (!url) throw last || fail('没有可用的区块链节点', true);
        var codeNote = await V.checkContractCode(url, chain.contract, V.pageCodeSha256());
        state = await readDraw(url, chain.contract, detail.id);
        if (state.commitBlock === 0n) throw fail('合约中没有这次抽查（drawId ' + detail.id + '）');
        var diffs = [];
        if (state.snapshotRoot !== body.snapshot_root) diffs.push('名单根 ' + state.snapshotRoot);
        if (state.seedHash !== body.seed_hash) diffs.push('种子哈希 ' + state.seedHash);
        if (state.targetBlock !== state.commitBlock + BigInt(chain.reveal_delay_blocks)) diffs.push('目标区块 ' + state.targetBlock);
        if (diffs.length) throw fail('合约中记录的是：' + diffs.join('，') + '，与承诺记录不符');
        return '链 ' + tr.chainId + ' 和合约 ' + tr.contract + ' 正是信任根（指纹 ' + tr.fingerprint + '）固定的。' +
          codeNote + '合约中有这次抽查：区块 ' + state.commitBlock + ' 承诺，名单根和种子哈希与记录一致，目标区块 ' +
          state.targetBlock + '（承诺时尚不存在）。';
      });

      await step('randomness', '随机数', async function () {
        if (!state.revealed) throw fail('合约中这次抽查还没有揭示种子');
        var seedHash = hex(await V.sha256(state.seed));
        if (seedHash !== state.seedHash) throw fail('揭示的种子哈希为 ' + seedHash + '，与承诺的不符');
        var block = await V.rpc(url, 'eth_getBlockByNumber', ['0x' + state.targetBlock.toString(16), false]);
        if (!block || !block.hash) throw fail('读取不到区块 ' + state.targetBlock, true);
        randomness = await V.sha256(V.concat([state.seed, V.hexToBytes(block.hash)]));
        if (hex(randomness) !== state.randomness) {
          throw fail('SHA-256(种子 ‖ 区块哈希) = ' + hex(randomness) + '，而合约中是 ' + state.randomness);
        }
        var revealed = await record(detail, 'draw.revealed');
        if (!revealed) throw fail('链上已揭示，但没有 draw.revealed 记录');
        var rb = revealed.body;
        if (rb.seed !== hex(state.seed) || rb.randomness !== hex(randomness) || rb.block_hash !== block.hash.slice(2).toLowerCase() ||
            rb.draw_id !== detail.id || refsOf(revealed).indexOf(detail.id) < 0) {
          throw fail('draw.revealed 记录与区块链不一致');
        }
        return '种子的哈希就是承诺的种子哈希；SHA-256(种子 ‖ 第 ' + state.targetBlock + ' 号区块哈希) = ' + hex(randomness) +
          '，与合约算出的一致。';
      });

      await step('plan', '重新抽取', async function () {
        var roots = { snapshot: body.snapshot_root, inspectors: body.inspectors_root, recusals: body.recusal_root };
        var plan;
        try {
          plan = await runDraw(randomness, entries, body.rates_bp, inspectors, body.per_check, pairs, roots);
        } catch (e) {
          if (!e.notEnough) throw e;
          var failed = await record(detail, 'draw.failed');
          if (!failed || detail.status !== 'failed') throw fail('重新抽取失败（' + e.message + '），但平台公布了计划');
          var fb = failed.body;
          if (fb.uscc !== e.notEnough.uscc || fb.needed !== e.notEnough.needed || fb.available !== e.notEnough.available
              || fb.recused !== e.notEnough.recused || fb.at_cap !== e.notEnough.at_cap) {
            throw fail('重新抽取的失败情况与 draw.failed 记录不同：' + e.message);
          }
          result.outcome = 'failed';
          return '重新抽取同样失败：' + e.message + '，与公布的一致。';
        }
        var env = await record(detail, 'draw.plan');
        if (!env) throw fail('没有 draw.plan 记录');
        if (refsOf(env).indexOf(detail.id) < 0) throw fail('draw.plan 记录没有指向这次抽查');
        if (!same(env.body, plan)) throw fail('重新抽取的结果与 draw.plan 记录不同');
        if (!same(detail.plan, env.body)) throw fail('页面显示的计划与 draw.plan 记录不同');
        var digest = await planDigest(plan);
        if (detail.plan_digest && detail.plan_digest !== digest) throw fail('计划摘要 ' + detail.plan_digest + ' 与重算的 ' + digest + ' 不同');
        var shown = (detail.assignments || []).map(function (a) {
          return { uscc: a.uscc, inspectors: a.inspectors.map(function (i) { return i.id; }) };
        });
        if (!same(shown, plan.assignments)) throw fail('页面列出的检查对象和检查人员与重新抽取的结果不同');
        var tiers = {};
        entries.forEach(function (e) { tiers[e.uscc] = e.tier; });
        (detail.assignments || []).forEach(function (a) {
          if (tiers[a.uscc] !== a.tier) throw fail('页面显示 ' + a.uscc + ' 的等级与名单不同');
        });
        result.outcome = digest;
        return '按公开算法重新抽取，得到完全相同的计划：' + plan.assignments.length + ' 户（' +
          TIERS.map(function (t) { return t + ' 级 ' + plan.selected[t].length; }).join('，') + '），每户 ' +
          plan.per_check + ' 名检查人员；计划摘要 ' + digest + '。';
      });
      result.verified = true;
    } catch (e) {
      result.reason = e && e.message ? e.message : String(e);
      result.incomplete = !!(e && e.incomplete);
    }
    return result;
  }

  function bind() {
    var btn = document.getElementById('recheck-draw');
    if (!btn) return;
    btn.addEventListener('click', async function () {
      var target = document.getElementById(btn.getAttribute('aria-controls'));
      btn.disabled = true;
      var ui = V.stepList(target);
      try {
        var r = await verifyDraw(btn.getAttribute('data-draw-id'), { onStep: ui.onStep });
        if (r.verified) {
          ui.finish('verified', '✓ 复核通过：这次抽取的检查对象和检查人员，正是由抽取前锁定的名单和链上随机数按公开算法得出的。');
        } else if (r.incomplete) {
          ui.finish('incomplete', '未能完成复核：' + r.reason);
        } else {
          ui.finish('failed', '✗ 复核失败：' + r.reason);
        }
      } finally {
        btn.disabled = false;
      }
    });
  }

  window.HMDraw = {
    snapshotRoot: snapshotRoot,
    inspectorsRoot: inspectorsRoot,
    recusalRoot: recusalRoot,
    selectionKeys: selectionKeys,
    runDraw: runDraw,
    planDigest: planDigest,
    verifyDraw: verifyDraw,
    SELECTOR_DRAW: SELECTOR_DRAW
  };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', bind);
  else bind();
})();
