// Safeguards of the outcome form (templates/area/outcomes.html): the fine in words (大写)
// as it is typed, and the SHA-256 of the chosen decision file, computed here in the
// browser (WebCrypto). The server checks both again (backend/disclosure/amounts.py).
(function () {
  "use strict";
  var DIGITS = "零壹贰叁肆伍陆柒捌玖";
  var SMALL = ["", "拾", "佰", "仟"];
  var GROUPS = ["", "万", "亿", "万亿"];

  function group(n) {
    var out = "", zero = false;
    for (var i = 3; i >= 0; i--) {
      var d = Math.floor(n / Math.pow(10, i)) % 10;
      if (d === 0) { zero = out.length > 0; continue; }
      if (zero) { out += "零"; zero = false; }
      out += DIGITS[d] + SMALL[i];
    }
    return out;
  }

  // Fen (a BigInt, so that no amount loses digits) in words, as backend/disclosure/amounts.py.
  function words(fen) {
    if (fen < 0n) return "负" + words(-fen);
    var whole = fen / 100n, cents = Number(fen % 100n), out = "";
    if (whole > 0n) {
      var groups = [], k = 0;
      while (whole > 0n) { groups.push([Number(whole % 10000n), k]); whole /= 10000n; k++; }
      var needZero = false;
      for (var j = groups.length - 1; j >= 0; j--) {
        var n = groups[j][0];
        if (n === 0) { needZero = out.length > 0; continue; }
        if (out && (needZero || n < 1000)) out += "零";
        out += group(n) + (GROUPS[groups[j][1]] || "");
        needZero = false;
      }
      out += "元";
    }
    if (!cents) return (out || "零元") + "整";
    var jiao = Math.floor(cents / 10), f = cents % 10;
    if (jiao) out += DIGITS[jiao] + "角"; else if (out) out += "零";
    if (f) out += DIGITS[f] + "分";
    return out;
  }

  function toFen(text) {
    var m = /^\s*(\d{1,16})(?:\.(\d{1,2}))?\s*$/.exec(text.replace(/,/g, ""));
    if (!m) return null;
    return BigInt(m[1]) * 100n + BigInt(((m[2] || "") + "00").slice(0, 2));
  }

  function hex(buffer) {
    return Array.prototype.map.call(new Uint8Array(buffer), function (b) {
      return b.toString(16).padStart(2, "0");
    }).join("");
  }

  document.addEventListener("DOMContentLoaded", function () {
    var amount = document.getElementById("o-amount_yuan");
    var shown = document.getElementById("amount-words");
    if (amount && shown) {
      var update = function () {
        var fen = toFen(amount.value);
        shown.textContent = amount.value.trim() === "" ? "" :
          fen === null ? "金额应为数字（元），最多两位小数" : "大写：" + words(fen);
      };
      amount.addEventListener("input", update);
      update();
    }
    var file = document.getElementById("o-evidence_file");
    var digest = document.getElementById("o-evidence_sha256");
    var status = document.getElementById("evidence-status");
    if (file && digest && window.crypto && window.crypto.subtle) {
      file.addEventListener("change", function () {
        var chosen = file.files && file.files[0];
        if (!chosen) return;
        if (status) status.textContent = "正在计算 SHA-256……";
        chosen.arrayBuffer().then(function (bytes) {
          return window.crypto.subtle.digest("SHA-256", bytes);
        }).then(function (sum) {
          digest.value = hex(sum);
          if (status) status.textContent = "已在本机计算文件 " + chosen.name + " 的 SHA-256。";
        }).catch(function () {
          if (status) status.textContent = "无法在浏览器中计算，请直接填写 SHA-256。";
        });
      });
    }
  });
})();
