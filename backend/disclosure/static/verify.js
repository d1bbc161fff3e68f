/*
 * 证明验证器 — checks a proof bundle in the visitor's own browser.
 *
 * Nothing here trusts the service's JSON: the record's bytes are hashed here
 * (WebCrypto SHA-256), the RFC 9162 inclusion proof is folded here (§2.1.3.2,
 * leaf prefix 0x00, node prefix 0x01), and the checkpoint the proof must lead
 * to is read from the MeteringLedger contract on the chain itself through
 * standard Ethereum JSON-RPC (eth_call of checkpoint(uint256), encoded by hand;
 * the anchoring transaction's receipt and its CheckpointAnchored event).
 *
 * It pins the trust root the page was served with: the page names its SHA-256
 * fingerprint, the document is read from /.well-known/honest-metering/trust-root.json
 * and must hash (RFC 8785, SHA-256) to exactly that fingerprint. The chain id, the
 * contract, the log key and the witnesses with their quorum come from it, never from
 * the bundle. A version 2 bundle's signed checkpoint (C2SP signed note) must be signed
 * by that log key; the witnesses' cosignatures (C2SP tlog-cosignature) are counted
 * against the quorum. Ed25519 is WebCrypto's own (no library).
 *
 * The visitor may choose the JSON-RPC node the anchor is checked against (#rpc-node on
 * /verify); the page's CSP allows the nodes the operator lists (HM_VERIFY_RPC_NODES,
 * named in data-rpc-origins), and the site's own /rpc is only the fallback. When no node
 * can be reached the verdict says what was checked offline and that the anchor was not.
 *
 * No library, no inline script: the page's Content-Security-Policy allows
 * only scripts from this site. Everything shown is set with textContent.
 */
(function () {
  'use strict';

  // keccak256("checkpoint(uint256)")[0:4] and keccak256 of the event signature;
  // tests/disclosure check both against web3.py and the compiled ABI.
  var SELECTOR_CHECKPOINT = '0xed64bab2';
  // keccak256("verifyInclusion(bytes32,uint64,uint64,bytes32,bytes32[])")[0:4]
  var SELECTOR_VERIFY_INCLUSION = '0x3db5ada7';
  var TOPIC_CHECKPOINT_ANCHORED =
    '0xec0ddbcd30e6380d886a3a2df4ca0a63ac5549b994f09459d7973a063ccdaea5';
  var BUNDLE_FORMAT = 'honest-metering/proof-bundle';
  var RPC_TIMEOUT_MS = 15000;
  var TRUST_ROOT_PATH = '/.well-known/honest-metering/trust-root.json';
  var TRUST_ROOT_FORMAT = 'honest-metering/trust-root';
  var TRUST_ROOT_CONTEXT = 'honest-metering/trust-root/v1\n';
  var SIG_ED25519 = 1;
  var SIG_COSIGNATURE_V1 = 4;
  var MAX_NOTE_SIGNATURES = 100;
  var NODE_STORAGE_KEY = 'hm.verify.rpcNode';

  // --- bytes and hashes ---------------------------------------------------------

  function VerifyError(message, incomplete) {
    this.message = message;
    this.incomplete = !!incomplete;
  }
  VerifyError.prototype = Object.create(Error.prototype);
  VerifyError.prototype.name = 'VerifyError';

  function hexToBytes(hex, what) {
    if (typeof hex !== 'string') throw new VerifyError((what || '值') + ' 不是十六进制字符串');
    var h = hex.indexOf('0x') === 0 || hex.indexOf('0X') === 0 ? hex.slice(2) : hex;
    if (h.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(h)) {
      throw new VerifyError((what || '值') + ' 不是有效的十六进制：' + hex);
    }
    var out = new Uint8Array(h.length / 2);
    for (var i = 0; i < out.length; i++) out[i] = parseInt(h.substr(i * 2, 2), 16);
    return out;
  }

  function bytesToHex(bytes) {
    var s = '';
    for (var i = 0; i < bytes.length; i++) s += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
    return s;
  }

  function concat(parts) {
    var n = 0;
    parts.forEach(function (p) { n += p.length; });
    var out = new Uint8Array(n);
    var o = 0;
    parts.forEach(function (p) { out.set(p, o); o += p.length; });
    return out;
  }

  function equalBytes(a, b) {
    if (a.length !== b.length) return false;
    var d = 0;
    for (var i = 0; i < a.length; i++) d |= a[i] ^ b[i];
    return d === 0;
  }

  function hasWebCrypto() {
    return typeof crypto !== 'undefined' && crypto.subtle && typeof crypto.subtle.digest === 'function';
  }

  function sha256(bytes) {
    if (!hasWebCrypto()) {
      return Promise.reject(new VerifyError(
        '此浏览器在当前页面不提供 WebCrypto（通常因为页面不是通过 HTTPS 打开的），无法计算哈希', true));
    }
    return crypto.subtle.digest('SHA-256', bytes).then(function (buf) { return new Uint8Array(buf); });
  }

  var LEAF_PREFIX = new Uint8Array([0]);
  var NODE_PREFIX = new Uint8Array([1]);

  function leafHash(data) { return sha256(concat([LEAF_PREFIX, data])); }
  function nodeHash(left, right) { return sha256(concat([NODE_PREFIX, left, right])); }

  /*
   * RFC 9162 §2.1.3.2: the root an inclusion proof leads to. Indexes are
   * BigInt because JavaScript's bit operators work on 32 bits only.
   */
  async function rootFromInclusionProof(index, size, leaf, proof) {
    var fn = BigInt(index);
    var sn = BigInt(size) - 1n;
    if (fn < 0n || fn > sn) {
      throw new VerifyError('叶子序号 ' + index + ' 不在大小为 ' + size + ' 的树中');
    }
    if (leaf.length !== 32) throw new VerifyError('叶子哈希应为 32 字节');
    var r = leaf;
    for (var i = 0; i < proof.length; i++) {
      var p = proof[i];
      if (p.length !== 32) throw new VerifyError('证明第 ' + (i + 1) + ' 个哈希不是 32 字节');
      if (sn === 0n) {
        throw new VerifyError('包含证明过长：有 ' + proof.length + ' 个哈希，只需要 ' + i + ' 个');
      }
      if ((fn & 1n) === 1n || fn === sn) {
        r = await nodeHash(p, r);
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) {
      throw new VerifyError('包含证明过短：只有 ' + proof.length + ' 个哈希');
    }
    return r;
  }

  async function verifyInclusion(index, size, leaf, proof, root) {
    var computed = await rootFromInclusionProof(index, size, leaf, proof);
    return equalBytes(computed, root);
  }

  // --- Ed25519, signed notes and checkpoints (C2SP signed-note, tlog-checkpoint,
  //     tlog-cosignature); backend/ledger/note.py and checkpoint.py are the Python side ---

  var utf8 = new TextEncoder();

  function b64ToBytes(s, what) {
    if (typeof s !== 'string' || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) {
      throw new VerifyError((what || '值') + ' 不是标准 base64：' + s);
    }
    var bin = atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  /* Whether `sig` is `pub`'s Ed25519 signature of `message` (WebCrypto). */
  async function ed25519Verify(pub, sig, message) {
    if (!hasWebCrypto()) {
      throw new VerifyError('此浏览器在当前页面不提供 WebCrypto，无法核对签名', true);
    }
    var key;
    try {
      key = await crypto.subtle.importKey('raw', pub, { name: 'Ed25519' }, false, ['verify']);
    } catch (e) {
      throw new VerifyError('此浏览器不支持 Ed25519 签名（WebCrypto），无法核对日志签名和见证签名；请使用新版浏览器，' +
        '或用命令行 honest-metering verify 核对', true);
    }
    if (sig.length !== 64) return false;
    return crypto.subtle.verify({ name: 'Ed25519' }, key, sig, message);
  }

  /* SHA-256(name || 0x0A || type || key)[:4] (signed-note, "Signatures"). */
  async function noteKeyId(name, type, pub) {
    return (await sha256(concat([utf8.encode(name + '\n'), new Uint8Array([type]), pub]))).slice(0, 4);
  }

  function checkKeyName(name, what) {
    if (!name || /[\s+]/.test(name)) throw new VerifyError(what + ' 的名称 “' + name + '” 不合规（不能为空，不能有空格或“+”）');
  }

  /* A verifier key name+hexid+base64(type || key); the id must match the key. */
  async function parseVkey(vkey, what) {
    what = what || '验证密钥';
    if (typeof vkey !== 'string') throw new VerifyError(what + ' 缺失');
    var i = vkey.indexOf('+');
    var j = i < 0 ? -1 : vkey.indexOf('+', i + 1);
    if (i < 0 || j < 0) throw new VerifyError(what + ' 应为 名称+密钥编号+密钥：' + vkey);
    var name = vkey.slice(0, i), hexId = vkey.slice(i + 1, j);
    checkKeyName(name, what);
    var raw = b64ToBytes(vkey.slice(j + 1), what);
    if (raw.length !== 33 || (raw[0] !== SIG_ED25519 && raw[0] !== SIG_COSIGNATURE_V1)) {
      throw new VerifyError(what + ' ' + vkey + ' 不是 32 字节的 Ed25519 密钥（类型 0x01 或 0x04）');
    }
    var pub = raw.slice(1);
    var kid = await noteKeyId(name, raw[0], pub);
    if (bytesToHex(kid) !== hexId.toLowerCase()) {
      throw new VerifyError(what + ' ' + vkey + ' 的密钥编号与密钥不符（应为 ' + bytesToHex(kid) + '）');
    }
    return { name: name, type: raw[0], pub: pub, keyId: kid, vkey: vkey };
  }

  /* Split a signed note into its text and signature lines (nothing verified yet). */
  function parseNote(data) {
    if (typeof data !== 'string' || data.slice(-1) !== '\n') throw new VerifyError('签名检查点应以换行结尾');
    if (/[\u0000-\u0009\u000b-\u001f]/.test(data)) throw new VerifyError('签名检查点含有换行以外的控制字符');
    var split = data.lastIndexOf('\n\n');
    if (split < 0) throw new VerifyError('签名检查点的正文和签名之间应有一个空行');
    var text = data.slice(0, split + 1);
    var lines = data.slice(split + 2).split('\n');
    lines.pop();
    if (!lines.length) throw new VerifyError('签名检查点没有签名');
    if (lines.length > MAX_NOTE_SIGNATURES) throw new VerifyError('签名检查点的签名过多');
    var sigs = lines.map(function (line) {
      if (line.indexOf('\u2014 ') !== 0) throw new VerifyError('签名行应以“— ”开头：' + line);
      var rest = line.slice(2);
      var sp = rest.indexOf(' ');
      if (sp < 0) throw new VerifyError('签名行应为“— 名称 签名”：' + line);
      var name = rest.slice(0, sp);
      checkKeyName(name, '签名者');
      var raw = b64ToBytes(rest.slice(sp + 1), name + ' 的签名');
      if (raw.length < 5) throw new VerifyError(name + ' 的签名过短');
      return { name: name, keyId: raw.slice(0, 4), data: raw.slice(4) };
    });
    return { text: text, signatures: sigs };
  }

  /* origin, size, base64 root: the three lines of a checkpoint's text. */
  function parseCheckpointText(text) {
    var lines = text.split('\n');
    if (lines.length !== 4 || lines[3] !== '') throw new VerifyError('检查点正文应为三行（来源、树大小、树根）');
    if (!lines[0]) throw new VerifyError('检查点的来源行为空');
    if (!/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new VerifyError('检查点的树大小 “' + lines[1] + '” 不是十进制数');
    var root = b64ToBytes(lines[2], '检查点树根');
    if (root.length !== 32) throw new VerifyError('检查点树根应为 32 字节');
    return { origin: lines[0], size: BigInt(lines[1]), root: root };
  }

  /*
   * The known keys whose signatures on the note verify: {name: timestamp} (0 for a log
   * key's plain signature). Unknown keys are ignored; a known key's failing signature
   * makes the note invalid, as in backend/ledger/note.py.
   */
  async function verifiedBy(note, keys) {
    var good = {};
    for (var i = 0; i < note.signatures.length; i++) {
      var sig = note.signatures[i];
      var key = keys.filter(function (k) { return k.name === sig.name && equalBytes(k.keyId, sig.keyId); })[0];
      if (!key) continue;
      var ok, ts = 0n;
      if (key.type === SIG_ED25519) {
        ok = await ed25519Verify(key.pub, sig.data, utf8.encode(note.text));
      } else if (sig.data.length !== 72) {
        ok = false;
      } else {
        ts = BigInt('0x' + bytesToHex(sig.data.slice(0, 8)));
        ok = ts < (1n << 63n) && await ed25519Verify(key.pub, sig.data.slice(8),
          utf8.encode('cosignature/v1\ntime ' + ts + '\n' + note.text));
      }
      if (!ok) throw new VerifyError(sig.name + '（密钥 ' + bytesToHex(sig.keyId) + '）的签名无法验证：签名检查点被改动过');
      good[key.name] = ts;
    }
    return good;
  }

  // --- the pinned trust root ------------------------------------------------------

  /*
   * Open a trust root document: its body (the document without `signatures`) must hash,
   * as RFC 8785 JSON, to `fingerprint`, and carry its log key's signature. Returns what
   * verifiers pin.
   */
  async function openTrustRoot(doc, fingerprint) {
    if (!doc || typeof doc !== 'object' || doc.format !== TRUST_ROOT_FORMAT) {
      throw new VerifyError('本站提供的信任根不是信任根文件', true);
    }
    var body = {};
    Object.keys(doc).forEach(function (k) { if (k !== 'signatures') body[k] = doc[k]; });
    var canonical = jcs(body);
    var fp = bytesToHex(await sha256(utf8.encode(canonical)));
    if (fingerprint && fp !== fingerprint) {
      throw new VerifyError('本站现在提供的信任根（指纹 ' + fp + '）不是本页显示的信任根（指纹 ' + fingerprint +
        '）：信任根可能刚刚更新，请刷新页面，并重新核对指纹', true);
    }
    if (!body.log || !body.ledger) throw new VerifyError('信任根缺少日志或账本信息', true);
    var logKey = await parseVkey(body.log.key, '信任根的日志密钥');
    if (logKey.type !== SIG_ED25519) throw new VerifyError('信任根的日志密钥应为 Ed25519（类型 0x01）');
    var own = (Array.isArray(doc.signatures) ? doc.signatures : []).filter(function (x) {
      return x && x.key === body.log.key;
    })[0];
    if (!own || !(await ed25519Verify(logKey.pub, b64ToBytes(own.signature, '信任根签名'),
      utf8.encode(TRUST_ROOT_CONTEXT + canonical)))) {
      throw new VerifyError('信任根没有它所列日志密钥的有效签名');
    }
    var witnesses = [];
    var listed = Array.isArray(body.witnesses) ? body.witnesses : [];
    for (var i = 0; i < listed.length; i++) {
      var w = await parseVkey(listed[i] && listed[i].key, '信任根的见证方密钥');
      if (w.type !== SIG_COSIGNATURE_V1) throw new VerifyError('见证方 ' + w.name + ' 的密钥应为联署密钥（类型 0x04）');
      witnesses.push(w);
    }
    var quorum = body.witness_quorum;
    if (!Number.isSafeInteger(quorum) || quorum < 0 || quorum > witnesses.length) {
      throw new VerifyError('信任根的见证门槛 ' + quorum + ' 不合规');
    }
    return {
      fingerprint: fp,
      version: body.version,
      origin: String(body.log.origin),
      logKey: logKey,
      witnesses: witnesses,
      quorum: quorum,
      chainId: String(body.ledger.chain_id),
      contract: String(body.ledger.contract_address)
    };
  }

  var trustRootCache = {};

  /* The trust root this page pins (by the fingerprint it was served with). */
  function loadTrustRoot(fingerprint) {
    if (!trustRootCache[fingerprint]) {
      trustRootCache[fingerprint] = (async function () {
        var res;
        try {
          res = await fetch(TRUST_ROOT_PATH, { headers: { Accept: 'application/json' }, cache: 'no-cache', credentials: 'omit' });
        } catch (e) {
          throw new VerifyError('无法取得本站的信任根（' + (e && e.message ? e.message : e) + '）', true);
        }
        if (!res.ok) throw new VerifyError('本站的信任根暂时无法取得（HTTP ' + res.status + '）', true);
        var doc;
        try {
          doc = await res.json();
        } catch (e) {
          throw new VerifyError('本站的信任根不是 JSON', true);
        }
        return openTrustRoot(doc, fingerprint);
      })();
      trustRootCache[fingerprint].catch(function () { delete trustRootCache[fingerprint]; });
    }
    return trustRootCache[fingerprint];
  }

  // --- canonical form: Unicode NFC, then RFC 8785 (JCS) ---------------------------

  function nfcDeep(v) {
    if (typeof v === 'string') return v.normalize('NFC');
    if (Array.isArray(v)) return v.map(nfcDeep);
    if (v !== null && typeof v === 'object') {
      var out = {};
      Object.keys(v).forEach(function (k) { out[k.normalize('NFC')] = nfcDeep(v[k]); });
      return out;
    }
    return v;
  }

  // RFC 8785: ECMAScript number and string serialisation, keys sorted by UTF-16 code units
  // (which is what Array.prototype.sort does by default).
  function jcs(v) {
    if (v === null || typeof v === 'boolean' || typeof v === 'string') return JSON.stringify(v);
    if (typeof v === 'number') {
      if (!isFinite(v)) throw new VerifyError('记录中有非有限数字');
      return JSON.stringify(v);
    }
    if (Array.isArray(v)) return '[' + v.map(jcs).join(',') + ']';
    var keys = Object.keys(v).sort();
    return '{' + keys.map(function (k) { return JSON.stringify(k) + ':' + jcs(v[k]); }).join(',') + '}';
  }

  function canonicalize(value) { return jcs(nfcDeep(value)); }

  // --- JSON-RPC -------------------------------------------------------------------

  var rpcId = 0;

  async function rpc(url, method, params) {
    var ctrl = typeof AbortController !== 'undefined' ? new AbortController() : null;
    var timer = ctrl ? setTimeout(function () { ctrl.abort(); }, RPC_TIMEOUT_MS) : null;
    var res;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: ++rpcId, method: method, params: params }),
        credentials: 'omit',
        cache: 'no-store',
        signal: ctrl ? ctrl.signal : undefined
      });
    } catch (e) {
      throw new VerifyError('无法连接区块链节点 ' + url + '（' + (e && e.message ? e.message : e) + '）', true);
    } finally {
      if (timer) clearTimeout(timer);
    }
    if (!res.ok) throw new VerifyError('区块链节点 ' + url + ' 返回 HTTP ' + res.status, true);
    var body;
    try {
      body = await res.json();
    } catch (e) {
      throw new VerifyError('区块链节点 ' + url + ' 的回答不是 JSON', true);
    }
    if (body.error) {
      var err = new VerifyError('节点返回错误：' + (body.error.message || JSON.stringify(body.error)), false);
      err.rpcError = body.error;
      throw err;
    }
    return body.result;
  }

  function uint256Hex(n) {
    var h = BigInt(n).toString(16);
    return '0'.repeat(64 - h.length) + h;
  }

  function word(bytes, i) { return bytes.slice(32 * i, 32 * (i + 1)); }
  function wordToBigInt(w) { return BigInt('0x' + (bytesToHex(w) || '0')); }

  /* checkpoint(uint256) returns (uint64 treeSize, uint64 timestamp, uint64 blockNumber, bytes32 root). */
  async function readCheckpoint(url, contract, index) {
    var data;
    try {
      data = await rpc(url, 'eth_call', [
        { to: contract, data: SELECTOR_CHECKPOINT + uint256Hex(index) },
        'latest'
      ]);
    } catch (e) {
      if (e.rpcError) {
        throw new VerifyError('合约中没有第 ' + index + ' 号检查点（调用被拒绝：' + e.rpcError.message + '）');
      }
      throw e;
    }
    var bytes = hexToBytes(data, '合约返回值');
    if (bytes.length === 0) throw new VerifyError('地址 ' + contract + ' 上没有合约代码');
    if (bytes.length < 128) throw new VerifyError('合约返回值长度不对（' + bytes.length + ' 字节）');
    return {
      treeSize: wordToBigInt(word(bytes, 0)),
      timestamp: wordToBigInt(word(bytes, 1)),
      blockNumber: wordToBigInt(word(bytes, 2)),
      root: word(bytes, 3)
    };
  }

  /*
   * The address must run the published MeteringLedger code, or "the contract says so"
   * would mean nothing: compare the SHA-256 of its runtime code with the published one.
   */
  async function checkContractCode(url, address, expectedSha256) {
    var code = hexToBytes(await rpc(url, 'eth_getCode', [address, 'latest']), '合约代码');
    if (code.length === 0) throw new VerifyError('地址 ' + address + ' 上没有合约代码');
    if (!expectedSha256) return '';
    var got = bytesToHex(await sha256(code));
    if (got !== expectedSha256) {
      throw new VerifyError('地址 ' + address + ' 上的合约代码（SHA-256 ' + got + '）不是公开的 MeteringLedger 合约（' +
        expectedSha256 + '）');
    }
    return '地址上运行的是公开的 MeteringLedger 合约代码（SHA-256 ' + got.slice(0, 16) + '…）。';
  }

  // --- what the page shows (backend/disclosure/shown.py) ---------------------------
  //
  // The page reads tables, which an operator could edit; the record is the truth. Each
  // place a page shows a record's fields carries data-record (the record id),
  // data-shown (envelope path → the value the text was made from) and data-shown-how
  // (path → {as: format, label}). The formats below re-implement the page's own
  // (shown.py); tests/disclosure/test_verify_js.py holds the two to the same output.

  function formatYuan(fen) {
    if (typeof fen !== 'number' || !Number.isSafeInteger(fen)) return '—';
    var a = Math.abs(fen);
    var whole = String(Math.floor(a / 100)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
    var cents = a % 100;
    return (fen < 0 ? '-' : '') + whole + '.' + (cents < 10 ? '0' : '') + cents + ' 元';
  }

  function zhDate(v) {
    if (v === null || v === undefined || v === '' || v === false) return '—';
    if (typeof v !== 'string') return JSON.stringify(v);
    var m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(v.slice(0, 10));
    if (!m) return v;
    var y = Number(m[1]), mo = Number(m[2]), d = Number(m[3]);
    var t = new Date(Date.UTC(y, mo - 1, d));
    if (y < 1 || t.getUTCMonth() !== mo - 1 || t.getUTCDate() !== d) return v;
    return y + '年' + mo + '月' + d + '日';
  }

  // A moment in Beijing time (UTC+8, no daylight saving since 1991), to the minute.
  function zhTime(v) {
    if (v === null || v === undefined || v === '') return '—';
    if (typeof v !== 'string') return JSON.stringify(v);
    var m = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/.exec(v);
    if (!m) return v;
    var ms = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
    var tz = m[7];
    if (tz && tz !== 'Z') {
      var sign = tz[0] === '-' ? -1 : 1;
      var hm = tz.slice(1).replace(':', '');
      ms -= sign * (Number(hm.slice(0, 2)) * 60 + Number(hm.slice(2))) * 60000;
    }
    var t = new Date(ms + 8 * 3600000);
    var pad = function (n) { return (n < 10 ? '0' : '') + n; };
    return t.getUTCFullYear() + '年' + (t.getUTCMonth() + 1) + '月' + t.getUTCDate() + '日 ' +
      pad(t.getUTCHours()) + ':' + pad(t.getUTCMinutes());
  }

  // Python's truthiness, which the page's 是/否 follows.
  function truthy(v) {
    if (Array.isArray(v)) return v.length > 0;
    if (v !== null && typeof v === 'object') return Object.keys(v).length > 0;
    return !!v;
  }

  /* The text a person reads for value `v` shown as `fmt`; for text and json, the value itself. */
  function shownText(fmt, v) {
    switch (fmt) {
      case 'yuan': return formatYuan(v);
      case 'date': return zhDate(v);
      case 'time': return zhTime(v);
      case 'yes': return truthy(v) ? '是' : '否';
      case 'count': return Array.isArray(v) ? v.length + ' 项' : '—';
      default:
        if (v === null || v === undefined) return '—';
        if (typeof v === 'string') return v.normalize('NFC');
        return canonicalize(v);
    }
  }

  // Formats whose visible text verify.js re-derives, so the text itself is checked too.
  var VISIBLE_FORMATS = { yuan: true, date: true, yes: true };

  function lookup(obj, path) {
    var v = obj;
    var parts = path.split('.');
    for (var i = 0; i < parts.length; i++) {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
      v = Object.prototype.hasOwnProperty.call(v, parts[i]) ? v[parts[i]] : null;
    }
    return v === undefined ? null : v;
  }

  /* The places on this page that show fields of record `recordId`. */
  function pageShown(recordId, root) {
    var out = [];
    (root || document).querySelectorAll('[data-shown]').forEach(function (el) {
      if (el.getAttribute('data-record') !== recordId) return;
      var values = null, how = null;
      try {
        values = JSON.parse(el.getAttribute('data-shown'));
        how = JSON.parse(el.getAttribute('data-shown-how') || '{}');
      } catch (e) {
        values = null;
      }
      out.push({
        element: el,
        recordId: recordId,
        values: values,
        how: how || {},
        missing: el.getAttribute('data-shown-missing') === 'true'
      });
    });
    return out;
  }

  /*
   * Compare what the page shows with the record's own fields (`record`: the parsed
   * envelope from the proof bundle, never from the page). Returns {checked, labels, diffs};
   * each diff is {label, path, shown, recorded}.
   */
  function comparePage(record, recordId, shown) {
    var diffs = [];
    var labels = [];
    var checked = 0;
    shown.forEach(function (s) {
      if (s.recordId !== recordId) {
        diffs.push({ label: '记录编号', path: 'record_id', shown: s.recordId, recorded: recordId });
        return;
      }
      if (s.missing) {
        diffs.push({ label: '记录内容', path: '', shown: '（数据表中没有这条记录，页面无法显示其内容）', recorded: '（记录存在于日志中）' });
        return;
      }
      if (!s.values || typeof s.values !== 'object') {
        diffs.push({ label: '页面数据', path: 'data-shown', shown: '（无法读取）', recorded: '' });
        return;
      }
      Object.keys(s.values).forEach(function (path) {
        var how = s.how[path] || {};
        var fmt = how.as || 'text';
        var label = how.label || path;
        var recorded = shownText(fmt, lookup(record, path));
        var shownValue = shownText(fmt, s.values[path]);
        checked++;
        if (labels.indexOf(label) < 0) labels.push(label);
        if (shownValue !== recorded) {
          diffs.push({ label: label, path: path, shown: shownValue, recorded: recorded });
          return;
        }
        if (!VISIBLE_FORMATS[fmt]) return;
        s.element.querySelectorAll('[data-field]').forEach(function (f) {
          if (f.getAttribute('data-field') !== path) return;
          var text = (f.textContent || '').trim();
          if (text !== recorded) diffs.push({ label: label, path: path, shown: text, recorded: recorded });
        });
      });
    });
    return { checked: checked, labels: labels, diffs: diffs };
  }

  function describeDiffs(diffs) {
    var seen = {};
    return diffs.filter(function (d) {
      // The same field shown the same way in two places (the header and the record) is one finding.
      var key = JSON.stringify([d.path, d.shown, d.recorded]);
      if (seen[key]) return false;
      seen[key] = true;
      return true;
    }).map(function (d) {
      return d.label + (d.path ? '（' + d.path + '）' : '') + '：页面显示“' + d.shown + '”，链上记录为“' + d.recorded + '”';
    }).join('；');
  }

  // --- the bundle -------------------------------------------------------------------

  var HASH_RE = /^0x[0-9a-f]{64}$/;

  function checkFormat(b) {
    if (b === null || typeof b !== 'object' || Array.isArray(b)) throw new VerifyError('证明文件应当是一个 JSON 对象');
    if (b.format !== BUNDLE_FORMAT) throw new VerifyError('这不是证明文件：format 应为 ' + BUNDLE_FORMAT);
    if (b.version !== 1 && b.version !== 2) throw new VerifyError('不支持的证明文件版本 ' + JSON.stringify(b.version) + '（本验证器支持版本 1 和 2）');
    if (b.version === 2 && typeof b.signed_checkpoint !== 'string') throw new VerifyError('第 2 版证明文件缺少 signed_checkpoint（签名检查点）');
    if (b.version === 1 && b.signed_checkpoint !== undefined && b.signed_checkpoint !== null) throw new VerifyError('第 1 版证明文件不应有 signed_checkpoint');
    if (typeof b.record !== 'string') throw new VerifyError('证明文件缺少 record（记录原文）');
    if (typeof b.record_id !== 'string' || !/^[0-9a-f]{64}$/.test(b.record_id)) throw new VerifyError('record_id 应为 64 位十六进制');
    if (typeof b.leaf_hash !== 'string' || !HASH_RE.test(b.leaf_hash)) throw new VerifyError('leaf_hash 格式不正确');
    if (!Number.isSafeInteger(b.leaf_index) || b.leaf_index < 0) throw new VerifyError('leaf_index 应为非负整数');
    if (!Array.isArray(b.inclusion_proof)) throw new VerifyError('inclusion_proof 应为哈希列表');
    b.inclusion_proof.forEach(function (p, i) {
      if (typeof p !== 'string' || !HASH_RE.test(p)) throw new VerifyError('inclusion_proof 第 ' + (i + 1) + ' 项格式不正确');
    });
    var cp = b.checkpoint;
    if (!cp || typeof cp !== 'object') throw new VerifyError('证明文件缺少 checkpoint（检查点）');
    ['index', 'tree_size', 'chain_id', 'block_number'].forEach(function (k) {
      if (!Number.isSafeInteger(cp[k]) || cp[k] < 0) throw new VerifyError('checkpoint.' + k + ' 应为非负整数');
    });
    if (cp.tree_size < 1) throw new VerifyError('checkpoint.tree_size 应至少为 1');
    if (typeof cp.root !== 'string' || !HASH_RE.test(cp.root)) throw new VerifyError('checkpoint.root 格式不正确');
    if (typeof cp.contract_address !== 'string' || !/^0x[0-9a-fA-F]{40}$/.test(cp.contract_address)) throw new VerifyError('checkpoint.contract_address 格式不正确');
    if (typeof cp.transaction_hash !== 'string' || !HASH_RE.test(cp.transaction_hash)) throw new VerifyError('checkpoint.transaction_hash 格式不正确');
  }

  function describeRecord(text) {
    try {
      var env = JSON.parse(text);
      return { type: env.type, subject: env.subject, at: env.at };
    } catch (e) {
      return null;
    }
  }

  /*
   * Which JSON-RPC nodes the anchor is read from: only the visitor's chosen node when
   * there is one (it must be one the page's CSP allows, or the browser would refuse it
   * with an error no one could read); else the bundle's ledger_url when allowed, then
   * the page's fallback (the site's own /rpc or its public node). `allowedOrigins` null:
   * no restriction known. Returns {urls, chosen, fallback, refused}.
   */
  function nodePlan(bundle, options) {
    var allowed = options.allowedOrigins || null;
    var fallback = (options.rpcUrls || []).slice();
    function isAllowed(u) {
      if (!allowed) return true;
      try { return allowed.indexOf(new URL(u).origin) >= 0; } catch (e) { return false; }
    }
    var chosen = options.chosenNode ? String(options.chosenNode).trim() : '';
    if (chosen) {
      var parsed = null;
      try { parsed = new URL(chosen); } catch (e) { parsed = null; }
      if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
        return { urls: [], chosen: chosen, fallback: fallback,
          refused: new VerifyError('您填写的节点地址 “' + chosen + '” 不是有效的 http(s) 网址', true) };
      }
      if (!isAllowed(parsed.href)) {
        return { urls: [], chosen: chosen, fallback: fallback, refused: new VerifyError(nodeNotAllowed(chosen, allowed), true) };
      }
      return { urls: [parsed.href], chosen: parsed.href, fallback: fallback, refused: null };
    }
    var urls = [];
    (bundle.ledger_url && isAllowed(bundle.ledger_url) ? [bundle.ledger_url] : []).concat(fallback).forEach(function (u) {
      if (u && urls.indexOf(u) < 0) urls.push(u);
    });
    return { urls: urls, chosen: null, fallback: fallback, refused: null };
  }

  function nodeNotAllowed(node, allowed) {
    return '您选择的节点 ' + node + ' 不在本站允许连接的节点之列（允许：' + (allowed || []).join('、') +
      '）。浏览器的安全策略（CSP connect-src）会阻止本页连接它。请选用列表中的节点；或请本站运营方把它加入设置 ' +
      'HM_VERIFY_RPC_NODES；或在自己的电脑上用命令行核对：honest-metering verify --trust-root 信任根.json --ledger ' +
      node + ' 证明文件.json';
  }

  // Steps that need nothing but the bundle and the pinned trust root.
  var OFFLINE_STEPS = { format: true, record: true, inclusion: true, trust: true, signature: true, witnesses: true };

  /* What was checked without the chain, when the chain could not be read. */
  function offlineSummary(result) {
    var parts = {
      record: '记录未被改动',
      inclusion: '记录在检查点的日志中（包含证明）',
      trust: '链和合约正是信任根固定的',
      signature: '检查点由信任根的日志密钥签名'
    };
    var done = result.offline.filter(function (k) { return parts[k]; }).map(function (k) { return parts[k]; });
    var w = result.witnessed;
    if (w) {
      done.push(w.ok ? '独立见证方联署 ' + w.count + '/' + w.n + '（要求 ' + w.k + ' 个）'
        : '独立见证方联署只有 ' + w.count + '/' + w.n + '，尚未达到要求的 ' + w.k + ' 个');
    }
    var text = '已在本机离线核对：' + done.join('；') + '。未核对：区块链锚定（链上检查点和锚定交易），连上区块链节点后请再验证一次。';
    if (result.bundle && result.bundle.version === 1) text += '第 1 版证明文件不带签名检查点，日志签名和见证方联署未核对。';
    return text;
  }

  /*
   * Verify a decoded bundle. `options.fingerprint` is the pinned trust root's
   * fingerprint (or `options.trustRoot` an opened one); `options.chosenNode` the
   * visitor's JSON-RPC node, `options.allowedOrigins` the origins the page may read,
   * `options.rpcUrls` the fallback endpoints (see nodePlan); `options.onStep(step)` is
   * called as each step starts and ends. `options.shown` (from pageShown) lists what
   * the page shows of the record: after the record is proven, a last step compares
   * it with the record's own fields. Resolves to
   * {verified, incomplete, reason, steps, bundle, chain, trustRoot, signed, witnessed,
   * offline, page, pageMismatch}.
   */
  async function verifyBundle(bundle, options) {
    options = options || {};
    var steps = [];
    var result = { verified: false, incomplete: false, reason: null, steps: steps, bundle: bundle, chain: null };
    var onStep = options.onStep || function () {};

    async function step(key, title, fn) {
      var s = { key: key, title: title, status: 'running', detail: '' };
      steps.push(s);
      onStep(s);
      try {
        var out = await fn();
        // A step may say it could not apply ({skipped: detail}): shown, never a failure.
        if (out && typeof out === 'object' && 'skipped' in out) {
          s.detail = out.skipped;
          s.status = 'skipped';
        } else {
          s.detail = out;
          s.status = 'ok';
        }
      } catch (e) {
        s.status = 'fail';
        s.detail = e && e.message ? e.message : String(e);
        if (e && e.incomplete) s.incomplete = true;
        onStep(s);
        throw e;
      }
      onStep(s);
    }

    try {
      await step('format', '证明文件格式', async function () {
        checkFormat(bundle);
        return '这是第 ' + bundle.version + ' 版证明文件，记录编号 ' + bundle.record_id + '。';
      });

      var data = new TextEncoder().encode(bundle.record);
      var leaf;
      await step('record', '记录内容未被改动', async function () {
        leaf = await leafHash(data);
        var hex = bytesToHex(leaf);
        if (hex !== bundle.record_id) {
          throw new VerifyError('记录内容与记录编号不符：记录的 ' + data.length + ' 个字节算出的哈希是 0x' + hex +
            '，而记录编号是 ' + bundle.record_id + '。记录被改动过。');
        }
        if ('0x' + hex !== bundle.leaf_hash) {
          throw new VerifyError('证明文件中的 leaf_hash ' + bundle.leaf_hash + ' 不是记录的哈希 0x' + hex);
        }
        var canonical;
        try {
          canonical = canonicalize(JSON.parse(bundle.record));
        } catch (e) {
          throw new VerifyError('记录不是有效的 JSON：' + (e.message || e));
        }
        if (canonical !== bundle.record) {
          throw new VerifyError('记录不是规范形式（NFC + RFC 8785），不能作为日志记录');
        }
        return '在本浏览器中用 SHA-256 计算记录原文（' + data.length + ' 字节）的哈希，结果 0x' + hex +
          ' 正是它的记录编号。';
      });

      var cp = bundle.checkpoint;
      await step('inclusion', '记录在日志中（包含证明）', async function () {
        var proof = bundle.inclusion_proof.map(function (p) { return hexToBytes(p); });
        var computed = await rootFromInclusionProof(bundle.leaf_index, cp.tree_size, leaf, proof);
        if (!equalBytes(computed, hexToBytes(cp.root))) {
          throw new VerifyError('包含证明算出的树根是 0x' + bytesToHex(computed) + '，与检查点的树根 ' + cp.root +
            ' 不一致：记录不在这个检查点的日志中，或证明被改动过。');
        }
        return '用 ' + proof.length + ' 个哈希逐层计算（RFC 9162），得到第 ' + bundle.leaf_index + ' 条记录所在、共 ' +
          cp.tree_size + ' 条记录的日志树根 ' + cp.root + '，与检查点一致。';
      });

      var tr = null;
      await step('trust', '证明属于本站信任根固定的链和合约', async function () {
        if (options.trustRoot) {
          tr = options.trustRoot;
        } else if (options.fingerprint) {
          tr = await loadTrustRoot(options.fingerprint);
        } else {
          throw new VerifyError('本页没有给出信任根指纹（本站暂时无法提供信任根），无法确认证明所说的链、合约和日志密钥是官方的；' +
            '请稍后再试，或用命令行 honest-metering verify --trust-root 核对', true);
        }
        result.trustRoot = tr;
        var wrong = [];
        if (BigInt(cp.chain_id) !== BigInt(tr.chainId)) {
          wrong.push('链 ' + cp.chain_id + '（信任根固定的是链 ' + tr.chainId + '）');
        }
        if (cp.contract_address.toLowerCase() !== tr.contract.toLowerCase()) {
          wrong.push('合约 ' + cp.contract_address + '（信任根固定的是合约 ' + tr.contract + '）');
        }
        if (wrong.length) {
          throw new VerifyError('证明文件所说的' + wrong.join('、') + '与本站信任根（指纹 ' +
            tr.fingerprint + '）不一致：这不是本日志的证明。');
        }
        return '在本浏览器中算出信任根的指纹 ' + tr.fingerprint + '，与本页显示的一致；链 ' + tr.chainId + ' 和合约 ' +
          tr.contract + ' 正是它固定的，不取证明文件自己的说法。';
      });

      var note = null;
      await step('signature', '检查点由信任根的日志密钥签名', async function () {
        if (bundle.version === 1) {
          return { skipped: '第 1 版证明文件不带签名检查点，未核对日志签名和见证（请使用第 2 版证明文件）。' };
        }
        note = parseNote(bundle.signed_checkpoint);
        var head = parseCheckpointText(note.text);
        if (head.origin !== tr.origin) {
          throw new VerifyError('签名检查点属于日志 “' + head.origin + '”，信任根固定的是日志 “' + tr.origin + '”');
        }
        if (head.size !== BigInt(cp.tree_size) || !equalBytes(head.root, hexToBytes(cp.root))) {
          throw new VerifyError('签名检查点是树大小 ' + head.size + '、树根 0x' + bytesToHex(head.root) +
            '，不是证明文件的检查点（树大小 ' + cp.tree_size + '，树根 ' + cp.root + '）');
        }
        var signed = await verifiedBy(note, [tr.logKey]);
        if (!(tr.logKey.name in signed)) {
          throw new VerifyError('检查点没有信任根日志密钥（' + tr.logKey.name + '+' + bytesToHex(tr.logKey.keyId) +
            '）的签名：这不是本日志签发的检查点。');
        }
        result.signed = true;
        return '信任根的日志密钥 ' + tr.logKey.name + '+' + bytesToHex(tr.logKey.keyId) + ' 签署了这个检查点（树大小 ' +
          cp.tree_size + '，树根 ' + cp.root + '），在本浏览器中用 Ed25519 核对。';
      });

      await step('witnesses', '独立见证方联署', async function () {
        if (bundle.version === 1) return { skipped: '第 1 版证明文件不带见证方联署。' };
        var n = tr.witnesses.length, k = tr.quorum;
        if (k === 0) return { skipped: '信任根没有要求见证方联署。' };
        var cosigned = await verifiedBy(note, tr.witnesses);
        var names = Object.keys(cosigned).sort();
        result.witnessed = { count: names.length, n: n, k: k, names: names, ok: names.length >= k };
        if (names.length >= k) {
          return '信任根列出的 ' + n + ' 个见证方中有 ' + names.length + ' 个（' + names.join('、') + '）联署了这个检查点，' +
            '信任根要求 ' + k + ' 个：运营方无法向不同的人展示不同的日志历史而不被发现。';
        }
        return { skipped: '尚未获得足够见证：信任根列出的 ' + n + ' 个见证方中只有 ' + names.length + ' 个联署，要求 ' + k +
          ' 个。在此之前，运营方有可能向其他人展示另一份日志历史。' };
      });

      var nodes = nodePlan(bundle, options);
      var url = null;
      var onchain;
      await step('checkpoint', '检查点已锚定在区块链上', async function () {
        if (nodes.refused) throw nodes.refused;
        var urls = nodes.urls;
        if (!urls.length) throw new VerifyError('没有可用的区块链节点，无法读取链上检查点（请在上方填写一个节点）', true);
        var lastError = null;
        for (var i = 0; i < urls.length && url === null; i++) {
          try {
            var chainId = BigInt(await rpc(urls[i], 'eth_chainId', []));
            if (chainId !== BigInt(cp.chain_id)) {
              lastError = new VerifyError('节点 ' + urls[i] + ' 是链 ' + chainId + '，而检查点在链 ' + cp.chain_id + ' 上', true);
              continue;
            }
            url = urls[i];
          } catch (e) {
            lastError = e;
          }
        }
        if (url === null) {
          if (nodes.chosen) {
            throw new VerifyError('无法使用您选择的节点 ' + nodes.chosen + '：' + (lastError ? lastError.message : '无法连接') +
              '。请确认节点地址正确、节点在运行并允许本站跨域读取（CORS）。', true);
          }
          throw lastError || new VerifyError('无法连接区块链节点', true);
        }
        var codeNote = await checkContractCode(url, cp.contract_address, options.codeSha256);
        onchain = await readCheckpoint(url, cp.contract_address, cp.index);
        var diffs = [];
        if (onchain.treeSize !== BigInt(cp.tree_size)) diffs.push('树大小 ' + onchain.treeSize + '（证明文件：' + cp.tree_size + '）');
        if (!equalBytes(onchain.root, hexToBytes(cp.root))) diffs.push('树根 0x' + bytesToHex(onchain.root) + '（证明文件：' + cp.root + '）');
        if (onchain.blockNumber !== BigInt(cp.block_number)) diffs.push('区块 ' + onchain.blockNumber + '（证明文件：' + cp.block_number + '）');
        if (diffs.length) {
          throw new VerifyError('区块链上合约的第 ' + cp.index + ' 号检查点与证明文件不符：' + diffs.join('，'));
        }
        var fallback = nodes.fallback.indexOf(url) >= 0;
        result.chain = {
          url: url,
          chosen: url === nodes.chosen,
          fallback: fallback,
          chainId: cp.chain_id,
          contract: cp.contract_address,
          anchoredAt: new Date(Number(onchain.timestamp) * 1000)
        };
        var whose = url === nodes.chosen ? '（您选择的节点）'
          : fallback ? '（本站自己的节点，仅作后备；不想信任本站的访客可在验证页选择其他机构的节点）' : '';
        return codeNote + '直接从区块链（链 ' + cp.chain_id + '，节点 ' + url + whose + '）读取合约 ' + cp.contract_address +
          ' 的第 ' + cp.index + ' 号检查点：树大小 ' + onchain.treeSize + '，树根 0x' + bytesToHex(onchain.root) +
          '，区块 ' + onchain.blockNumber + '，与上一步算出的树根一致。';
      });

      await step('transaction', '锚定交易', async function () {
        var receipt = await rpc(url, 'eth_getTransactionReceipt', [cp.transaction_hash]);
        if (!receipt) throw new VerifyError('链上找不到交易 ' + cp.transaction_hash);
        if (BigInt(receipt.status) !== 1n) throw new VerifyError('交易 ' + cp.transaction_hash + ' 在链上执行失败');
        if (BigInt(receipt.blockNumber) !== BigInt(cp.block_number)) {
          throw new VerifyError('交易在区块 ' + BigInt(receipt.blockNumber) + '，不是证明文件所说的区块 ' + cp.block_number);
        }
        var want = cp.contract_address.toLowerCase();
        var found = (receipt.logs || []).some(function (lg) {
          if (!lg.topics || lg.topics.length < 2) return false;
          if (String(lg.address).toLowerCase() !== want) return false;
          if (String(lg.topics[0]).toLowerCase() !== TOPIC_CHECKPOINT_ANCHORED) return false;
          if (BigInt(lg.topics[1]) !== BigInt(cp.index)) return false;
          var d = hexToBytes(lg.data);
          return d.length >= 96 && wordToBigInt(word(d, 0)) === BigInt(cp.tree_size) &&
            equalBytes(word(d, 1), hexToBytes(cp.root));
        });
        if (!found) {
          throw new VerifyError('交易 ' + cp.transaction_hash + ' 没有在合约中锚定第 ' + cp.index + ' 号检查点');
        }
        result.chain.transaction = cp.transaction_hash;
        result.chain.block = cp.block_number;
        return '交易 ' + cp.transaction_hash + '（区块 ' + cp.block_number + '）执行成功，合约发出了 CheckpointAnchored(' +
          cp.index + ', ' + cp.tree_size + ', ' + cp.root + ') 事件。';
      });

      await step('contract', '合约自己的核对（verifyInclusion）', async function () {
        // The contract re-runs the inclusion proof on chain: browser, CLI and contract agree.
        var proof = bundle.inclusion_proof;
        var data = SELECTOR_VERIFY_INCLUSION + bytesToHex(leaf) + uint256Hex(bundle.leaf_index) +
          uint256Hex(cp.tree_size) + cp.root.slice(2) + uint256Hex(5 * 32) + uint256Hex(proof.length) +
          proof.map(function (p) { return p.slice(2); }).join('');
        var out = hexToBytes(await rpc(url, 'eth_call', [{ to: cp.contract_address, data: data }, 'latest']), '合约返回值');
        if (out.length !== 32 || wordToBigInt(out) !== 1n) {
          throw new VerifyError('合约的 verifyInclusion(叶子, ' + bundle.leaf_index + ', ' + cp.tree_size + ', 树根, 证明) 返回 false');
        }
        return '合约 ' + cp.contract_address + ' 的 verifyInclusion 在链上用同一份包含证明核对，返回 true。';
      });

      if (options.shown && options.shown.length) {
        await step('page', '页面显示与记录一致', async function () {
          // The record's own fields: the bytes just proven, never the page.
          var record = JSON.parse(bundle.record);
          var cmp = comparePage(record, bundle.record_id, options.shown);
          result.page = cmp;
          if (cmp.diffs.length) {
            result.pageMismatch = true;
            throw new VerifyError('页面显示与链上记录不一致：' + describeDiffs(cmp.diffs) + '。');
          }
          return '将本页显示的 ' + cmp.checked + ' 项内容（' + cmp.labels.join('、') +
            '）与上面验证过的记录原文逐项核对，全部一致。';
        });
      }
      if (options.completeness) {
        await step('complete', '记录完整性', async function () {
          try {
            var c = await options.completeness(result);
            result.completeness = c;
            return c.detail;
          } catch (e) {
            if (e && e.missing) result.pageIncomplete = true;
            throw e;
          }
        });
      }
      result.verified = true;
    } catch (e) {
      result.reason = e && e.message ? e.message : String(e);
      result.incomplete = !!(e && e.incomplete);
      var failed = steps.filter(function (x) { return x.status === 'fail'; })[0];
      if (result.incomplete && failed && (failed.key === 'checkpoint' || failed.key === 'transaction' || failed.key === 'contract')) {
        result.offline = steps.filter(function (x) { return OFFLINE_STEPS[x.key] && x.status === 'ok'; })
          .map(function (x) { return x.key; });
      }
    }
    return result;
  }

  // --- the page -------------------------------------------------------------------------

  var ICONS = { ok: '✓', fail: '✗', running: '…', skipped: '–' };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function pageRpcUrls() {
    var body = document.body;
    var url = body && body.getAttribute('data-rpc-url');
    return url ? [new URL(url, window.location.href).href] : [];
  }

  /* The fingerprint of the trust root this page was served with (what the browser pins). */
  function pageFingerprint() {
    var fp = document.body && document.body.getAttribute('data-trust-root');
    return fp && /^[0-9a-f]{64}$/.test(fp) ? fp : null;
  }

  /* The origins this page's CSP lets it read: its own and the listed JSON-RPC nodes'. */
  function pageAllowedOrigins() {
    var listed = (document.body && document.body.getAttribute('data-rpc-origins')) || '';
    return [window.location.origin].concat(listed.split(/\s+/).filter(Boolean));
  }

  /* The node the visitor chose on /verify (remembered for the shop pages' 验证). */
  function pageChosenNode() {
    var input = document.getElementById('rpc-node');
    if (input) return input.value.trim();
    try {
      return (window.localStorage && window.localStorage.getItem(NODE_STORAGE_KEY)) || '';
    } catch (e) {
      return '';
    }
  }

  function rememberNode(value) {
    try {
      if (!window.localStorage) return;
      if (value) window.localStorage.setItem(NODE_STORAGE_KEY, value);
      else window.localStorage.removeItem(NODE_STORAGE_KEY);
    } catch (e) { /* storage disabled: the choice holds for this page only */ }
  }

  function pageCodeSha256() {
    var v = document.body && document.body.getAttribute('data-contract-code-sha256');
    return v && /^[0-9a-f]{64}$/.test(v) ? v : null;
  }

  /*
   * A live list of steps in `container`: returns {onStep, verdict}. Each step is an
   * <li data-step data-status>; the container's data-state is running/verified/failed/incomplete.
   */
  function stepList(container) {
    container.hidden = false;
    container.textContent = '';
    container.className = 'verify-result running';
    container.setAttribute('data-state', 'running');
    var verdict = el('p', 'verdict', '正在验证…');
    verdict.setAttribute('role', 'status');
    var list = el('ol', 'steps');
    container.appendChild(verdict);
    container.appendChild(list);
    var items = {};
    return {
      verdict: verdict,
      onStep: function (s) {
        var li = items[s.key];
        if (!li) {
          li = el('li', 'step');
          li.appendChild(el('span', 'icon'));
          li.appendChild(el('strong', 'step-title', s.title));
          li.appendChild(el('span', 'step-detail'));
          items[s.key] = li;
          list.appendChild(li);
        }
        li.className = 'step step-' + s.status;
        li.setAttribute('data-step', s.key);
        li.setAttribute('data-status', s.status);
        li.querySelector('.icon').textContent = ICONS[s.status] || '';
        li.querySelector('.step-detail').textContent = s.detail || '';
      },
      finish: function (state, text) {
        container.className = 'verify-result ' + state;
        container.setAttribute('data-state', state);
        verdict.textContent = text;
      }
    };
  }

  /* Runs the verifier and renders its steps into `container` as they happen. */
  async function verifyInto(container, bundle, shown, completeness) {
    var ui = stepList(container);
    var verdict = ui.verdict;
    var result = await verifyBundle(bundle, {
      rpcUrls: pageRpcUrls(),
      allowedOrigins: pageAllowedOrigins(),
      chosenNode: pageChosenNode(),
      codeSha256: pageCodeSha256(),
      fingerprint: pageFingerprint(),
      onStep: ui.onStep,
      shown: shown,
      completeness: completeness
    });
    var state = result.verified ? 'verified' : result.incomplete ? 'incomplete' : 'failed';
    ui.finish(state, verdict.textContent);
    if (result.verified) {
      var w = result.witnessed;
      verdict.textContent = '✓ 已验证：这条记录真实存在于已锚定到区块链的日志中，自锚定以来未被改动、删除或倒签。' +
        (w ? (w.ok ? '检查点由 ' + w.count + ' 个独立见证方联署（要求 ' + w.k + ' 个）。'
          : '注意：检查点尚未获得足够见证（' + w.count + '/' + w.n + '，要求 ' + w.k + ' 个）。') : '') +
        (result.page ? '本页显示的内容（' + result.page.labels.join('、') + '）也已与这条记录逐项核对，完全一致。' : '') +
        (result.completeness ? '记录完整性：已证明该经营者共 ' + result.completeness.count + ' 条记录，本页没有遗漏。' : '');
      var cp = bundle.checkpoint;
      var tx = el('dl', 'chain-facts');
      [
        ['信任根指纹', result.trustRoot ? result.trustRoot.fingerprint : '—'],
        ['核对所用节点', result.chain ? result.chain.url + (result.chain.chosen ? '（您选择的）' : result.chain.fallback ? '（本站自己的，仅作后备）' : '') : '—'],
        ['区块链', '链 ' + cp.chain_id],
        ['合约', cp.contract_address],
        ['检查点', '第 ' + cp.index + ' 号（日志前 ' + cp.tree_size + ' 条记录）'],
        ['锚定交易', cp.transaction_hash],
        ['区块', String(cp.block_number)],
        ['锚定时间（链上）', result.chain && result.chain.anchoredAt ? result.chain.anchoredAt.toLocaleString('zh-CN', { timeZone: 'Asia/Shanghai', hour12: false }) + '（北京时间）' : cp.anchored_at]
      ].forEach(function (row) {
        tx.appendChild(el('dt', null, row[0]));
        var dd = el('dd', null, row[1]);
        if (row[0] === '锚定交易' || row[0] === '合约' || row[0] === '信任根指纹') dd.className = 'mono';
        tx.appendChild(dd);
      });
      container.appendChild(tx);
    } else if (result.incomplete) {
      verdict.textContent = '未能完成验证：' + result.reason;
      if (result.offline) {
        var off = el('p', 'offline', offlineSummary(result));
        off.setAttribute('data-offline', result.offline.join(' ') +
          (result.witnessed ? (result.witnessed.ok ? ' witnessed' : ' not-witnessed') : ''));
        container.appendChild(off);
      }
    } else if (result.pageIncomplete) {
      verdict.textContent = '✗ ' + result.reason + '这条记录本身已验证；是本页漏列了链上日志中该经营者的记录。';
    } else if (result.pageMismatch) {
      verdict.textContent = '✗ ' + result.reason + '记录本身已验证（在链上日志中，未被改动）；是本页显示的内容与它不符，本页所依据的数据可能被改动过。';
    } else {
      verdict.textContent = '✗ 验证失败：' + result.reason;
    }
    return result;
  }

  function readFileText(file) {
    return new Promise(function (resolve, reject) {
      var r = new FileReader();
      r.onload = function () { resolve(String(r.result)); };
      r.onerror = function () { reject(new Error('无法读取文件')); };
      r.readAsText(file, 'utf-8');
    });
  }

  function showParseError(container, message) {
    container.hidden = false;
    container.textContent = '';
    container.className = 'verify-result failed';
    container.setAttribute('data-state', 'failed');
    var p = el('p', 'verdict', '✗ 验证失败：' + message);
    p.setAttribute('role', 'status');
    container.appendChild(p);
  }

  async function verifyText(container, text) {
    var bundle;
    try {
      bundle = JSON.parse(text);
    } catch (e) {
      showParseError(container, '文件不是 JSON 格式（' + e.message + '）');
      return null;
    }
    return verifyInto(container, bundle);
  }

  /* Version 2 (signed and cosigned checkpoint); version 1 when the log cannot sign (503). */
  async function fetchBundle(recordId) {
    var base = '/api/records/' + encodeURIComponent(recordId) + '/proof';
    var res = await fetch(base + '?version=2', { headers: { Accept: 'application/json' }, cache: 'no-store' });
    if (res.status === 503) {
      res = await fetch(base, { headers: { Accept: 'application/json' }, cache: 'no-store' });
    }
    var body = await res.json().catch(function () { return null; });
    if (!res.ok) {
      var why = res.status === 409 ? '这条记录尚未锚定到区块链，下一个检查点锚定后（通常几秒到几分钟）再试。'
        : res.status === 404 ? '没有这条记录。'
        : (body && body.detail) || ('HTTP ' + res.status);
      throw new VerifyError(why, res.status === 409);
    }
    return body;
  }

  function bindRecordButtons() {
    document.querySelectorAll('button[data-verify-record]').forEach(function (btn) {
      btn.addEventListener('click', async function () {
        var id = btn.getAttribute('data-verify-record');
        var target = document.getElementById(btn.getAttribute('aria-controls'));
        if (!target) return;
        btn.disabled = true;
        btn.setAttribute('aria-expanded', 'true');
        try {
          var bundle = await fetchBundle(id);
          // completeness.js (shop pages) adds the 记录完整性 step.
          var complete = window.HMVerify.pageCompleteness ? window.HMVerify.pageCompleteness() : null;
          await verifyInto(target, bundle, pageShown(id), complete);
        } catch (e) {
          showParseError(target, e.message || String(e));
          if (e.incomplete) {
            target.className = 'verify-result incomplete';
            target.setAttribute('data-state', 'incomplete');
            target.querySelector('.verdict').textContent = '未能完成验证：' + e.message;
          }
        } finally {
          btn.disabled = false;
        }
      });
    });
  }

  function bindVerifyPage() {
    var form = document.getElementById('verify-form');
    if (!form) return;
    var result = document.getElementById('verify-result');
    var fileInput = document.getElementById('bundle-file');
    var textArea = document.getElementById('bundle-text');
    var drop = document.getElementById('drop-zone');
    var recordInput = document.getElementById('record-id');
    var nodeInput = document.getElementById('rpc-node');
    var nodeError = document.getElementById('rpc-node-error');
    if (nodeInput) {
      if (!nodeInput.value) {
        try { nodeInput.value = (window.localStorage && window.localStorage.getItem(NODE_STORAGE_KEY)) || ''; } catch (e) { /* none */ }
      }
      var checkNode = function () {
        var plan = nodePlan({}, { chosenNode: nodeInput.value, allowedOrigins: pageAllowedOrigins() });
        nodeError.hidden = !plan.refused;
        nodeError.textContent = plan.refused ? plan.refused.message : '';
        nodeInput.setAttribute('aria-invalid', plan.refused ? 'true' : 'false');
        rememberNode(plan.refused ? '' : nodeInput.value.trim());
      };
      nodeInput.addEventListener('change', checkNode);
      if (nodeInput.value) checkNode();
    }

    fileInput.addEventListener('change', async function () {
      if (fileInput.files && fileInput.files[0]) {
        var text = await readFileText(fileInput.files[0]);
        textArea.value = text;
        await verifyText(result, text);
      }
    });
    ['dragenter', 'dragover'].forEach(function (ev) {
      drop.addEventListener(ev, function (e) { e.preventDefault(); drop.classList.add('dragging'); });
    });
    ['dragleave', 'drop'].forEach(function (ev) {
      drop.addEventListener(ev, function () { drop.classList.remove('dragging'); });
    });
    drop.addEventListener('drop', async function (e) {
      e.preventDefault();
      var f = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
      if (!f) return;
      var text = await readFileText(f);
      textArea.value = text;
      await verifyText(result, text);
    });
    form.addEventListener('submit', async function (e) {
      e.preventDefault();
      if (nodeInput) nodeInput.dispatchEvent(new Event('change'));
      var rid = recordInput && recordInput.value.trim().toLowerCase().replace(/^0x/, '');
      if (!textArea.value.trim() && rid) {
        try {
          var bundle = await fetchBundle(rid);
          textArea.value = JSON.stringify(bundle, null, 2);
          await verifyInto(result, bundle);
        } catch (err) {
          showParseError(result, err.message || String(err));
        }
        return;
      }
      if (!textArea.value.trim()) {
        showParseError(result, '请选择、拖入或粘贴一个证明文件');
        return;
      }
      await verifyText(result, textArea.value);
    });
  }

  window.HMVerify = {
    hexToBytes: hexToBytes,
    bytesToHex: bytesToHex,
    sha256: sha256,
    leafHash: leafHash,
    nodeHash: nodeHash,
    rootFromInclusionProof: rootFromInclusionProof,
    verifyInclusion: verifyInclusion,
    canonicalize: canonicalize,
    readCheckpoint: readCheckpoint,
    checkContractCode: checkContractCode,
    rpc: rpc,
    concat: concat,
    equalBytes: equalBytes,
    VerifyError: VerifyError,
    pageRpcUrls: pageRpcUrls,
    pageFingerprint: pageFingerprint,
    pageAllowedOrigins: pageAllowedOrigins,
    pageChosenNode: pageChosenNode,
    nodePlan: nodePlan,
    b64ToBytes: b64ToBytes,
    ed25519Verify: ed25519Verify,
    parseVkey: parseVkey,
    parseNote: parseNote,
    parseCheckpointText: parseCheckpointText,
    verifiedBy: verifiedBy,
    openTrustRoot: openTrustRoot,
    loadTrustRoot: loadTrustRoot,
    pageCodeSha256: pageCodeSha256,
    ICONS: ICONS,
    verifyBundle: verifyBundle,
    formatYuan: formatYuan,
    zhDate: zhDate,
    zhTime: zhTime,
    shownText: shownText,
    pageShown: pageShown,
    comparePage: comparePage,
    verifyInto: verifyInto,
    pageFingerprint: pageFingerprint,
    stepList: stepList,
    SELECTOR_CHECKPOINT: SELECTOR_CHECKPOINT,
    SELECTOR_VERIFY_INCLUSION: SELECTOR_VERIFY_INCLUSION,
    TOPIC_CHECKPOINT_ANCHORED: TOPIC_CHECKPOINT_ANCHORED
  };

  function init() {
    bindRecordButtons();
    bindVerifyPage();
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
