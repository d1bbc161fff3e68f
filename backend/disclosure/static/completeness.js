/*
 * 记录完整性 on a shop's page: the merchant's completeness proof, checked in the browser
 * (docs/proof-bundle.md, "Completeness proofs"). Loaded after verify.js, whose record
 * buttons run it as a last step; it uses verify.js's functions (window.HMVerify).
 */
(function () {
  'use strict';
  var V = window.HMVerify;
  if (!V) return;
  var sha256 = V.sha256, concat = V.concat, hexToBytes = V.hexToBytes, bytesToHex = V.bytesToHex;
  var equalBytes = V.equalBytes, VerifyError = V.VerifyError, verifyBundle = V.verifyBundle;
  var pageRpcUrls = V.pageRpcUrls, pageCodeSha256 = V.pageCodeSha256;


  var INDEX_LEAF = new Uint8Array([0x10]);
  var INDEX_NODE = new Uint8Array([0x11]);
  var INDEX_IDS = new Uint8Array([0x12]);
  var INDEX_TYPE = 'ledger.subject_index';

  function keyBit(key, d) { return (key[d >> 3] >> (7 - (d & 7))) & 1; }

  function countBytes(n) {
    var out = new Uint8Array(8);
    var v = BigInt(n);
    for (var i = 7; i >= 0; i--) { out[i] = Number(v & 255n); v >>= 8n; }
    return out;
  }

  async function idsDigest(ids) {
    var c = new Uint8Array(32);
    for (var i = 0; i < ids.length; i++) {
      c = await sha256(concat([INDEX_IDS, c, hexToBytes(ids[i], '记录编号')]));
    }
    return c;
  }

  /* The root a subject-index proof leads to for `key` (subject_index.root_from_proof). */
  async function indexRootFromProof(key, proof) {
    var siblings = (proof.siblings || []).map(function (s) { return hexToBytes(s, '索引证明'); });
    if (siblings.length > 256 || siblings.some(function (s) { return s.length !== 32; })) {
      throw new VerifyError('索引证明的格式不正确');
    }
    var depth = siblings.length;
    var empty = new Uint8Array(32);
    var leaf = proof.leaf;
    var h = empty;
    if (leaf) {
      var lk = hexToBytes(leaf.key, '索引叶子');
      for (var d = 0; d < depth; d++) {
        if (keyBit(lk, d) !== keyBit(key, d)) throw new VerifyError('索引证明的叶子不在这个代码的路径上');
      }
      h = await sha256(concat([INDEX_LEAF, lk, countBytes(leaf.count), hexToBytes(leaf.ids_digest, '索引叶子')]));
    }
    if (depth && equalBytes(siblings[depth - 1], empty)) throw new VerifyError('索引证明的格式不正确');
    for (var i = depth - 1; i >= 0; i--) {
      h = keyBit(key, i) ? await sha256(concat([INDEX_NODE, siblings[i], h]))
        : await sha256(concat([INDEX_NODE, h, siblings[i]]));
    }
    return h;
  }

  /*
   * Fetch the completeness proof of `uscc`, verify it (the index record's bundle against
   * the chain, the sparse Merkle proof), and account for every proven record on the page:
   * shown (data-record) or listed as not shown (`notShown`). Resolves to {count, detail};
   * a record neither shown nor accounted for throws with `missing` set.
   */
  async function checkCompleteness(uscc, notShown, options) {
    var res = await fetch('/api/merchants/' + encodeURIComponent(uscc) + '/completeness', {
      headers: { Accept: 'application/json' }, cache: 'no-store'
    });
    var data = await res.json().catch(function () { return null; });
    if (!res.ok || !data) {
      throw new VerifyError('无法取得记录完整性证明：' + ((data && (data.detail_zh || data.detail)) || ('HTTP ' + res.status)), true);
    }
    var b = data.index_record;
    var inner = await verifyBundle(b, options);
    if (!inner.verified) {
      throw new VerifyError('记录索引未通过验证：' + inner.reason, inner.incomplete);
    }
    var rec = JSON.parse(b.record);
    var body = rec.body || {};
    if (rec.type !== INDEX_TYPE || rec.subject !== null || b.leaf_index !== b.checkpoint.tree_size - 1 ||
        body.covers !== b.leaf_index || data.covers !== b.leaf_index || data.tree_size !== b.checkpoint.tree_size) {
      throw new VerifyError('记录索引不是第 ' + b.checkpoint.index + ' 号检查点的最后一条记录');
    }
    var key = await sha256(new TextEncoder().encode(uscc));
    if (data.subject !== uscc || data.key !== bytesToHex(key)) throw new VerifyError('完整性证明不是关于本经营者的');
    var ids = data.record_ids || [];
    var leaf = data.proof && data.proof.leaf;
    var member = !!(leaf && leaf.key === bytesToHex(key));
    if (member) {
      var digest = await idsDigest(ids);
      if (leaf.count !== ids.length || leaf.ids_digest !== bytesToHex(digest)) {
        throw new VerifyError('链上索引记载该经营者有 ' + leaf.count + ' 条记录，证明列出的记录与之不符（列出 ' + ids.length + ' 条）');
      }
    } else if (ids.length) {
      throw new VerifyError('不存在证明却列出了记录');
    }
    var root = await indexRootFromProof(key, data.proof);
    if (bytesToHex(root) !== String(body.root)) throw new VerifyError('索引证明与链上记录索引的根不符');
    var onPage = {};
    document.querySelectorAll('[data-record]').forEach(function (e) { onPage[e.getAttribute('data-record')] = true; });
    var accounted = {};
    (notShown || []).forEach(function (id) { accounted[id] = true; });
    var shown = ids.filter(function (id) { return onPage[id]; });
    var missing = ids.filter(function (id) { return !onPage[id] && !accounted[id]; });
    var n = ids.length;
    var cp = '截至第 ' + data.checkpoint + ' 号检查点';
    if (missing.length) {
      var err = new VerifyError('记录不完整：链上索引证明该经营者' + cp + '共有 ' + n + ' 条记录，本页显示 ' + shown.length +
        ' 条，说明不显示 ' + (n - shown.length - missing.length) + ' 条，缺少 ' + missing.length + ' 条（记录编号 ' +
        missing.map(function (id) { return id.slice(0, 16); }).join('、') + '）。');
      err.missing = missing;
      throw err;
    }
    return {
      count: n,
      detail: n ? '已证明 ' + n + ' 条记录：链上索引证明该经营者' + cp + '共有 ' + n + ' 条记录，本页显示其中 ' + shown.length +
        ' 条' + (n > shown.length ? '，其余 ' + (n - shown.length) + ' 条按规定不在本页显示（已过公示期等）' : '') + '，没有遗漏。'
        : '链上索引证明' + cp + '没有任何记录涉及这个代码。'
    };
  }

  /* The page's completeness check for its merchant, or null (not a shop page). */
  function pageCompleteness() {
    var box = document.getElementById('completeness');
    var uscc = box && box.getAttribute('data-uscc');
    if (!uscc) return null;
    var notShown = [];
    try { notShown = JSON.parse(box.getAttribute('data-not-shown') || '[]'); } catch (e) { notShown = []; }
    // The index record is checked like the record before it: the same pinned trust root
    // (already opened by that check), node choice and contract.
    return function (outer) {
      return checkCompleteness(uscc, notShown, {
        rpcUrls: pageRpcUrls(), allowedOrigins: V.pageAllowedOrigins(), chosenNode: V.pageChosenNode(),
        codeSha256: pageCodeSha256(), fingerprint: V.pageFingerprint(),
        trustRoot: outer && outer.trustRoot
      });
    };
  }

  V.idsDigest = idsDigest;
  V.indexRootFromProof = indexRootFromProof;
  V.checkCompleteness = checkCompleteness;
  V.pageCompleteness = pageCompleteness;
})();
