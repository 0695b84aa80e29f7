// The hosted checkout page (/checkout/{payment_id}?client_secret=…[&key=pk_…]).
//
// Reads the payment's checkout view with the client secret (as the bearer
// token, or with the publishable key when the link carries one), lets the
// customer pick one of the payment's methods, confirms, handles
// `next_action`, follows the payment live, and shows the outcome. Rules
// kept here:
// - card details go only into the body of the confirm request: never into
//   a URL, the console, cookies or browser storage, and the inputs are
//   cleared once sent;
// - everything shown is set with textContent (never parsed as HTML);
// - only a publishable key or the client secret is used: a secret key in
//   the link is refused;
// - every string shown comes from the message catalogue of the page's
//   language (the inert JSON block `#messages`).
(function () {
  "use strict";

  var METHODS = ["card", "crypto", "bank_transfer", "ewallet", "cash_voucher", "check"];
  var OFFLINE = ["bank_transfer", "cash_voucher", "check"];
  // While the payment waits on the customer or the processor, the page
  // re-reads it this often (crypto: confirmations move without events),
  // for at most POLL_LIMIT reads.
  var POLL_MS = 4000;
  var CRYPTO_POLL_MS = 1500;
  var POLL_LIMIT = 900;
  // How long the outcome is shown before the customer is sent back.
  var RETURN_DELAY_MS = 2500;
  // Function selectors (first four bytes of the keccak-256 of the
  // signature) of the contract calls the wallet makes.
  var SEL = {
    pay: "5e5571ac",
    payWithPermit: "9f6b014a",
    payNative: "efc3d609",
    approve: "095ea7b3",
    allowance: "dd62ed3e",
    nonces: "7ecebe00",
    eip712Domain: "84b0196e"
  };
  var STREAM_EVENTS = [
    "payment.requires_action", "payment.processing", "payment.crypto_detected",
    "payment.crypto_exception", "payment.succeeded", "payment.failed", "payment.canceled"
  ];

  var messages = {};
  var state = {
    id: "",
    secret: "",
    key: "",
    payment: null,
    merchantName: "",
    cryptoOptions: [],
    cryptoChoice: null,
    method: null,
    busy: false,
    pollTimer: null,
    polls: 0,
    countdownTimer: null,
    stream: null,
    returnTimer: null,
    walletBusy: false,
    shownExpired: false
  };

  function $(id) {
    return document.getElementById(id);
  }

  // ------------------------------------------------------------ messages

  function t(key, vars) {
    var text = Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : key;
    if (vars) {
      text = text.replace(/\{([a-z_]+)\}/g, function (all, name) {
        return Object.prototype.hasOwnProperty.call(vars, name) ? String(vars[name]) : all;
      });
    }
    return text;
  }

  function loadMessages() {
    try {
      messages = JSON.parse($("messages").textContent) || {};
    } catch (e) {
      messages = {};
    }
    var nodes = document.querySelectorAll("[data-i18n]");
    Array.prototype.forEach.call(nodes, function (el) {
      setText(el, t(el.getAttribute("data-i18n")));
    });
  }

  function lang() {
    return document.documentElement.lang || "en";
  }

  // ------------------------------------------------------------ helpers

  function setText(el, value) {
    el.textContent = value === null || value === undefined ? "" : String(value);
  }

  function show(id, visible) {
    $(id).hidden = !visible;
  }

  function clear(el) {
    while (el.firstChild) {
      el.removeChild(el.firstChild);
    }
  }

  function hideAll() {
    ["loading", "not-found", "message", "status", "pay", "challenge", "action", "crypto", "result", "refresh"].forEach(function (id) {
      show(id, false);
    });
  }

  function message(text, kind) {
    var el = $("message");
    setText(el, text);
    el.className = "notice" + (kind ? " " + kind : "");
    el.hidden = !text;
  }

  function status(text, kind) {
    var el = $("status");
    if (el.textContent !== text) {
      setText(el, text);
    }
    el.className = "notice" + (kind ? " " + kind : "");
    el.hidden = !text;
  }

  function fail(text) {
    stopPolling();
    hideAll();
    message(text, "error");
  }

  function notFound() {
    stopPolling();
    hideAll();
    setText($("amount"), "");
    show("not-found", true);
  }

  function newIdempotencyKey() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function paymentPath() {
    return "/v1/payments/" + encodeURIComponent(state.id);
  }

  function secretQuery() {
    return "?client_secret=" + encodeURIComponent(state.secret);
  }

  // One API request with the publishable key or the client secret.
  // Resolves to {status, data}; rejects only when the node cannot be reached.
  function api(method, path, body) {
    var headers = { Authorization: "Bearer " + state.key, Accept: "application/json" };
    var init = {
      method: method,
      headers: headers,
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
      redirect: "error"
    };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      headers["Idempotency-Key"] = newIdempotencyKey();
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try {
          data = text ? JSON.parse(text) : null;
        } catch (e) {
          data = null;
        }
        return { status: response.status, data: data };
      });
    });
  }

  function formatAmount(amount, currency) {
    var code = String(currency || "").toUpperCase();
    try {
      var format = new Intl.NumberFormat(lang(), { style: "currency", currency: code });
      var digits = format.resolvedOptions().maximumFractionDigits;
      return format.format(amount / Math.pow(10, digits));
    } catch (e) {
      return String(amount) + " " + code;
    }
  }

  // Base units (a decimal string, any size) in whole units, exactly.
  function formatUnits(raw, decimals) {
    var digits = String(raw || "0").replace(/^0+/, "") || "0";
    if (!/^[0-9]+$/.test(digits)) {
      return "";
    }
    while (digits.length <= decimals) {
      digits = "0" + digits;
    }
    var whole = digits.slice(0, digits.length - decimals);
    var fraction = digits.slice(digits.length - decimals).replace(/0+$/, "");
    return fraction ? whole + "." + fraction : whole;
  }

  function formatTime(unixSeconds) {
    if (typeof unixSeconds !== "number") {
      return "";
    }
    return new Date(unixSeconds * 1000).toLocaleString(lang());
  }

  function setBusy(busy) {
    state.busy = busy;
    var buttons = document.querySelectorAll("#pay button, #challenge button, #refresh, #requote");
    Array.prototype.forEach.call(buttons, function (b) {
      b.disabled = busy;
    });
    var radios = document.querySelectorAll("#method-list input, #crypto-options input");
    Array.prototype.forEach.call(radios, function (r) {
      r.disabled = busy;
    });
  }

  function stopPolling() {
    if (state.pollTimer !== null) {
      window.clearTimeout(state.pollTimer);
      state.pollTimer = null;
    }
  }

  function schedulePoll(ms) {
    stopPolling();
    if (state.polls >= POLL_LIMIT) {
      return;
    }
    state.pollTimer = window.setTimeout(function () {
      state.pollTimer = null;
      state.polls += 1;
      load(true);
    }, ms || POLL_MS);
  }

  // Live status: each event of the payment makes the page re-read it.
  function follow() {
    if (state.stream || typeof window.EventSource !== "function") {
      return;
    }
    var stream = new window.EventSource(paymentPath() + "/events/stream" + secretQuery());
    STREAM_EVENTS.forEach(function (name) {
      stream.addEventListener(name, function () {
        load(true);
      });
    });
    state.stream = stream;
  }

  function unfollow() {
    if (state.stream) {
      state.stream.close();
      state.stream = null;
    }
  }

  // ------------------------------------------------------------ rendering

  function render(payment, notice) {
    state.payment = payment;
    stopPolling();
    hideAll();
    if (state.countdownTimer !== null && payment.status !== "requires_action" && payment.status !== "processing") {
      window.clearInterval(state.countdownTimer);
      state.countdownTimer = null;
    }
    setText($("amount"), formatAmount(payment.amount, payment.currency));
    setText($("payment-ref"), t("payment_ref", { id: payment.id }));
    if (state.merchantName) {
      setText($("merchant"), t("pay_merchant", { merchant: state.merchantName }));
    }
    if (payment.description) {
      setText($("description"), payment.description);
      show("description", true);
    }
    switch (payment.status) {
      case "requires_payment_method":
        showMethods(payment);
        if (notice) {
          message(notice, "error");
        }
        break;
      case "failed":
        showMethods(payment);
        message(notice || failureText(payment.last_payment_error), "error");
        break;
      case "requires_action":
        showAction(payment);
        break;
      case "processing":
        if (payment.next_action) {
          showAction(payment);
        } else {
          result(t("processing_title"), t("processing_text"));
          show("refresh", true);
          schedulePoll();
        }
        break;
      case "requires_capture":
        result(t("authorized_title"), t("authorized_text"), "success");
        ended(payment);
        break;
      case "succeeded":
        if (payment.crypto) {
          showCryptoOutcome(payment);
        }
        result(t("succeeded_title"), t("succeeded_text"), "success");
        ended(payment);
        break;
      case "canceled":
        if (payment.crypto) {
          showCryptoOutcome(payment);
        }
        result(t("canceled_title"), t("canceled_text"));
        ended(payment);
        break;
      default:
        result(t("unknown_title"), t("unknown_text", { status: payment.status }));
    }
    if (payment.status === "requires_action" || payment.status === "processing") {
      follow();
    }
  }

  // The payment is over: stop following it and send the customer back.
  function ended(payment) {
    unfollow();
    var back = safeUrl(payment.return_url);
    if (!back) {
      return;
    }
    var url = new URL(back);
    url.searchParams.set("payment_id", payment.id);
    $("return-href").href = url.href;
    show("return-link", true);
    if (state.returnTimer === null) {
      state.returnTimer = window.setTimeout(function () {
        window.location.replace(url.href);
      }, RETURN_DELAY_MS);
    }
  }

  // A decline in the page's language when the catalogue knows its code,
  // else in the API's words.
  function failureText(error) {
    var known = function (key) {
      return Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : null;
    };
    var reason = error && ((error.decline_code && known("decline_" + error.decline_code)) ||
      (error.code && known("error_" + error.code)) || error.message);
    return reason ? t("failed_with", { reason: reason }) : t("failed_text");
  }

  function result(title, text, kind) {
    setText($("result-title"), title);
    setText($("result-text"), text);
    $("result").className = kind === "success" ? "notice success" : "notice";
    show("result", true);
  }

  function showMethods(payment) {
    var list = $("method-list");
    clear(list);
    var types = (payment.payment_method_types || []).filter(function (type) {
      if (type === "crypto") {
        return state.cryptoOptions.length > 0;
      }
      return METHODS.indexOf(type) >= 0;
    });
    if (types.length === 0) {
      fail(t("no_methods"));
      return;
    }
    if (types.indexOf(state.method) < 0) {
      state.method = types[0];
    }
    types.forEach(function (type) {
      var label = document.createElement("label");
      var radio = document.createElement("input");
      radio.type = "radio";
      radio.name = "method";
      radio.value = type;
      radio.checked = type === state.method;
      radio.addEventListener("change", function () {
        state.method = type;
        message("");
        showForm();
      });
      label.appendChild(radio);
      label.appendChild(document.createTextNode(t("method_" + type)));
      list.appendChild(label);
    });
    show("methods", types.length > 1);
    show("pay", true);
    showForm();
  }

  function cryptoLabel(option) {
    return t("crypto_option", {
      asset: String(option.asset).toUpperCase(),
      chain: chainName(option.chain_id)
    });
  }

  function chainName(chainId) {
    var key = "chain_" + chainId;
    return Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : t("chain_n", { chain: chainId });
  }

  function showForm() {
    var method = state.method;
    show("card-form", method === "card");
    show("ewallet-form", method === "ewallet");
    show("crypto-form", method === "crypto");
    var offline = OFFLINE.indexOf(method) >= 0;
    show("offline-form", offline);
    if (offline) {
      setText($("offline-text"), t("offline_" + method));
    }
    if (method === "crypto") {
      var list = $("crypto-options");
      clear(list);
      if (!state.cryptoChoice) {
        state.cryptoChoice = state.cryptoOptions[0];
      }
      state.cryptoOptions.forEach(function (option, i) {
        var label = document.createElement("label");
        var radio = document.createElement("input");
        radio.type = "radio";
        radio.name = "crypto-option";
        radio.value = String(i);
        radio.checked = option === state.cryptoChoice;
        radio.addEventListener("change", function () {
          state.cryptoChoice = option;
        });
        label.appendChild(radio);
        label.appendChild(document.createTextNode(cryptoLabel(option)));
        list.appendChild(label);
      });
    }
  }

  function details(pairs) {
    var dl = $("action-details");
    clear(dl);
    pairs.forEach(function (pair) {
      if (pair[1] === null || pair[1] === undefined || pair[1] === "") {
        return;
      }
      var dt = document.createElement("dt");
      var dd = document.createElement("dd");
      setText(dt, pair[0]);
      setText(dd, pair[1]);
      dl.appendChild(dt);
      dl.appendChild(dd);
    });
  }

  // Only http(s) links are followed; anything else is not shown.
  function safeUrl(raw) {
    if (!raw) {
      return null;
    }
    try {
      var url = new URL(String(raw), window.location.href);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function showAction(payment) {
    var action = payment.next_action || {};
    var amount = formatAmount(payment.amount, payment.currency);
    if (action.type === "otp_challenge") {
      $("otp-code").value = "";
      show("challenge", true);
      $("otp-code").focus();
      return;
    }
    if (action.type === "crypto_transfer") {
      showCrypto(payment);
      return;
    }
    details([]);
    show("action-link", false);
    switch (action.type) {
      case "redirect": {
        var href = safeUrl(action.redirect_url);
        setText($("action-title"), t("ewallet_title"));
        setText($("action-text"), href ? t("ewallet_text", { amount: amount }) : t("ewallet_bad_link"));
        if (href) {
          $("action-href").href = href;
          show("action-link", true);
        }
        break;
      }
      case "display_voucher": {
        var voucher = action.voucher || {};
        setText($("action-title"), t("voucher_title"));
        setText($("action-text"), t("voucher_text", { amount: amount }));
        details([[t("reference"), voucher.reference], [t("pay_before"), formatTime(voucher.expires_at)]]);
        break;
      }
      case "bank_transfer_instructions":
        setText($("action-title"), t("bank_title"));
        setText($("action-text"), t("bank_text", { amount: amount }));
        details([
          [t("account_holder"), action.account_holder],
          ["IBAN", action.iban],
          ["BIC", action.bic],
          [t("routing_number"), action.routing_number],
          [t("account_number"), action.account_number],
          [t("reference"), action.reference],
          [t("amount"), amount]
        ]);
        break;
      case "mail_check":
        setText($("action-title"), t("check_title"));
        setText($("action-text"), t("check_text", { amount: amount }));
        details([[t("payable_to"), action.payable_to], [t("reference"), action.reference], [t("amount"), amount]]);
        break;
      default:
        setText($("action-title"), t("action_title"));
        setText($("action-text"), t("action_text"));
    }
    show("action", true);
    show("refresh", true);
    schedulePoll();
  }

  // ------------------------------------------------------------ crypto

  function cryptoAction(payment) {
    return (payment.next_action && payment.next_action.crypto) || {};
  }

  function decimalsOf(chainId, asset) {
    for (var i = 0; i < state.cryptoOptions.length; i++) {
      var o = state.cryptoOptions[i];
      if (o.chain_id === chainId && String(o.asset).toLowerCase() === String(asset).toLowerCase()) {
        return o.decimals;
      }
    }
    return String(asset).toLowerCase() === "eth" ? 18 : 6;
  }

  function minus(a, b) {
    try {
      var d = BigInt(String(a || "0")) - BigInt(String(b || "0"));
      return d > 0n ? d.toString() : "0";
    } catch (e) {
      return "0";
    }
  }

  function showCrypto(payment) {
    var c = cryptoAction(payment);
    var view = payment.crypto || {};
    var asset = String(c.asset || "").toUpperCase();
    var decimals = decimalsOf(c.chain_id, c.asset);
    var whole = formatUnits(c.amount, decimals);
    setText($("crypto-title"), t("crypto_title", { asset: asset }));
    setText($("crypto-amount"), whole + " " + asset);
    setText($("crypto-fiat"), t("crypto_fiat", { amount: formatAmount(payment.amount, payment.currency) }));
    setText($("crypto-network"), t("crypto_network", { chain: chainName(c.chain_id), confirmations: c.confirmations_required }));
    var address = c.deposit_address || c.router_address || "";
    setText($("crypto-address"), address);
    setText($("crypto-amount-copy"), whole);
    var uri = c.deposit_uri || c.uri || "";
    setText($("crypto-uri"), uri);
    setText($("scan-hint"), c.deposit_address ? t("scan_hint_deposit") : t("scan_hint_router"));
    var qr = $("crypto-qr");
    var src = paymentPath().replace("/v1/payments/", "/checkout/") + "/qr.svg" + secretQuery() + "&v=" + encodeURIComponent(String(c.payment_reference || "").slice(-8));
    if (qr.getAttribute("src") !== src) {
      qr.setAttribute("src", src);
    }
    qr.alt = t("qr_alt", { amount: whole, asset: asset });
    var received = view.amount_received || "0";
    var expected = view.amount || c.amount;
    var remaining = minus(expected, received);
    var expired = quoteExpired(c.expires_at);
    state.shownExpired = expired;
    // The QR code and the link ask for the whole amount: once part of it
    // has arrived, only the rest may be sent (copied, or by the wallet).
    var partial = received !== "0" && remaining !== "0";
    show("crypto-qr", !!uri && !partial);
    show("crypto-uri-label", !partial);
    show("crypto-uri-row", !partial);
    if (partial) {
      setText($("crypto-amount-copy"), formatUnits(remaining, decimals));
      setText($("scan-hint"), t("scan_hint_rest"));
    }
    // A lapsed quote is not paid any more: only a new one is offered.
    show("crypto-pay", !expired || received !== "0");
    setText($("wallet-intro"), window.ethereum ? t("wallet_intro") : t("wallet_missing"));
    $("wallet-pay").disabled = !window.ethereum || state.walletBusy;

    show("crypto-requote", false);
    if (payment.status === "processing" && received !== "0" && remaining !== "0") {
      status(t("crypto_underpaid", {
        received: formatUnits(received, decimals) + " " + asset,
        expected: whole + " " + asset,
        rest: formatUnits(remaining, decimals) + " " + asset
      }), "error");
    } else if (payment.status === "processing") {
      status(t("crypto_confirming", {
        n: Math.min(view.confirmations || 0, c.confirmations_required || 0),
        total: c.confirmations_required
      }));
    } else if (expired) {
      status(t("crypto_expired"), "error");
      show("crypto-requote", true);
    } else {
      status(t("crypto_waiting"));
    }
    show("crypto", true);
    show("status", true);
    startCountdown(c.expires_at, payment.status === "processing" && remaining === "0");
    schedulePoll(CRYPTO_POLL_MS);
  }

  function quoteExpired(expiresAt) {
    return typeof expiresAt === "number" && expiresAt * 1000 <= Date.now();
  }

  function startCountdown(expiresAt, settled) {
    var el = $("crypto-countdown");
    function tick(fromTimer) {
      // The quote lapsed (or, clocks being what they are, came back): show
      // the step again for what now holds. Never from the first tick, which
      // runs inside that very rendering.
      if (fromTimer === true && !settled && state.payment && state.payment.status === "requires_action" &&
          quoteExpired(expiresAt) !== state.shownExpired) {
        showCrypto(state.payment);
        return;
      }
      if (settled || typeof expiresAt !== "number") {
        setText(el, "");
        return;
      }
      var left = Math.max(0, Math.floor(expiresAt - Date.now() / 1000));
      var mm = Math.floor(left / 60);
      var ss = ("0" + (left % 60)).slice(-2);
      setText(el, left > 0 ? t("crypto_expires_in", { time: mm + ":" + ss }) : t("crypto_quote_expired"));
      el.className = left > 0 && left < 120 ? "countdown soon" : "countdown";
    }
    if (state.countdownTimer !== null) {
      window.clearInterval(state.countdownTimer);
    }
    tick(false);
    state.countdownTimer = window.setInterval(function () {
      tick(true);
    }, 1000);
  }

  // What happened to crypto money after the payment ended.
  function showCryptoOutcome(payment) {
    var view = payment.crypto || {};
    var c = cryptoAction(payment);
    var asset = String(view.asset || c.asset || "").toUpperCase();
    var decimals = decimalsOf(view.chain_id, view.asset || c.asset);
    var vars = {
      received: formatUnits(view.amount_received, decimals) + " " + asset,
      expected: formatUnits(view.amount, decimals) + " " + asset,
      extra: formatUnits(minus(view.amount_received, view.amount), decimals) + " " + asset
    };
    if (!view.exception && payment.status === "succeeded") {
      status(t("crypto_received", vars), "success");
    } else if (view.exception === "overpaid") {
      status(t("crypto_overpaid", vars));
    } else if (view.exception === "paid_late") {
      status(t("crypto_paid_late", vars), "error");
    } else if (view.exception === "underpaid") {
      status(t("crypto_underpaid_expired", vars), "error");
    }
  }

  function chooseTab(wallet) {
    $("tab-scan").setAttribute("aria-selected", wallet ? "false" : "true");
    $("tab-wallet").setAttribute("aria-selected", wallet ? "true" : "false");
    show("panel-scan", !wallet);
    show("panel-wallet", wallet);
  }

  function copy(sourceId, button) {
    var text = $(sourceId).textContent;
    var done = function () {
      setText(button, t("copied"));
      window.setTimeout(function () {
        setText(button, t("copy"));
      }, 1500);
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, function () {
        selectText(sourceId);
      });
    } else {
      selectText(sourceId);
    }
  }

  function selectText(id) {
    var range = document.createRange();
    range.selectNodeContents($(id));
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  // ------------------------------------------------------------ wallet

  function hex64(value) {
    var h = BigInt(value).toString(16);
    return ("0".repeat(64) + h).slice(-64);
  }

  function word(hexValue) {
    return ("0".repeat(64) + String(hexValue).replace(/^0x/, "").toLowerCase()).slice(-64);
  }

  function step(text, kind) {
    var li = document.createElement("li");
    setText(li, text);
    if (kind) {
      li.className = kind;
    }
    $("wallet-steps").appendChild(li);
  }

  function walletError(error) {
    var code = error && typeof error.code === "number" ? error.code : null;
    if (code === 4001) {
      return t("wallet_rejected");
    }
    if (code === 4100) {
      return t("wallet_unauthorized");
    }
    if (code === -32002) {
      return t("wallet_pending");
    }
    var detail = error && error.message ? String(error.message).slice(0, 200) : "";
    return t("wallet_failed", { detail: detail });
  }

  // The node's EIP-3085 parameters for a chain, when it has a public RPC URL.
  function addChainParams(chainId) {
    var options = state.cryptoOptions || [];
    for (var i = 0; i < options.length; i++) {
      if (options[i].chain_id === chainId && options[i].add_chain) {
        return options[i].add_chain;
      }
    }
    return null;
  }

  function request(method, params) {
    return window.ethereum.request({ method: method, params: params || [] });
  }

  function waitReceipt(hash) {
    return new Promise(function (resolve, reject) {
      var tries = 0;
      function poll() {
        request("eth_getTransactionReceipt", [hash]).then(function (receipt) {
          if (receipt) {
            if (receipt.status === "0x1" || receipt.status === 1) {
              resolve(receipt);
            } else {
              reject({ message: t("wallet_reverted") });
            }
          } else if (++tries > 300) {
            reject({ message: t("wallet_no_receipt") });
          } else {
            window.setTimeout(poll, 1000);
          }
        }, reject);
      }
      poll();
    });
  }

  function send(from, to, data, value) {
    var tx = { from: from, to: to, data: "0x" + data };
    if (value) {
      tx.value = "0x" + BigInt(value).toString(16);
    }
    return request("eth_sendTransaction", [tx]).then(function (hash) {
      step(t("wallet_sent", { hash: String(hash).slice(0, 10) + "…" }));
      return waitReceipt(hash);
    });
  }

  function ethCall(to, data) {
    return request("eth_call", [{ to: to, data: "0x" + data }, "latest"]);
  }

  // A string at byte offset `at` of ABI-encoded return data.
  function abiString(dataHex, at) {
    var d = dataHex.replace(/^0x/, "");
    var offset = parseInt(d.slice(at * 2, at * 2 + 64), 16) * 2;
    var length = parseInt(d.slice(offset, offset + 64), 16);
    var bytes = d.slice(offset + 64, offset + 64 + length * 2);
    var array = new Uint8Array(length);
    for (var i = 0; i < length; i++) {
      array[i] = parseInt(bytes.slice(i * 2, i * 2 + 2), 16);
    }
    return new TextDecoder().decode(array);
  }

  // EIP-2612 support and its EIP-712 domain, read from the token (ERC-5267);
  // null when it has none.
  function permitDomain(token, owner) {
    return Promise.all([ethCall(token, SEL.nonces + word(owner)), ethCall(token, SEL.eip712Domain)])
      .then(function (answers) {
        var domain = answers[1];
        if (!domain || domain.length < 2 + 64 * 7) {
          return null;
        }
        return { nonce: BigInt(answers[0]), name: abiString(domain, 32), version: abiString(domain, 64) };
      }, function () {
        return null;
      });
  }

  function payWithPermit(from, c, amount, permit) {
    var deadline = BigInt(Math.floor(Date.now() / 1000) + 1800);
    var typed = {
      types: {
        EIP712Domain: [
          { name: "name", type: "string" },
          { name: "version", type: "string" },
          { name: "chainId", type: "uint256" },
          { name: "verifyingContract", type: "address" }
        ],
        Permit: [
          { name: "owner", type: "address" },
          { name: "spender", type: "address" },
          { name: "value", type: "uint256" },
          { name: "nonce", type: "uint256" },
          { name: "deadline", type: "uint256" }
        ]
      },
      primaryType: "Permit",
      domain: { name: permit.name, version: permit.version, chainId: c.chain_id, verifyingContract: c.token_address },
      message: {
        owner: from,
        spender: c.router_address,
        value: amount,
        nonce: permit.nonce.toString(),
        deadline: deadline.toString()
      }
    };
    step(t("wallet_sign_permit"));
    return request("eth_signTypedData_v4", [from, JSON.stringify(typed)]).then(function (signature) {
      var sig = String(signature).replace(/^0x/, "");
      var v = parseInt(sig.slice(128, 130), 16);
      if (v < 27) {
        v += 27;
      }
      step(t("wallet_confirm_pay"));
      return send(from, c.router_address, SEL.payWithPermit + word(c.token_address) + hex64(amount) +
        word(c.payment_reference) + hex64(deadline) + hex64(v) + sig.slice(0, 64) + sig.slice(64, 128));
    });
  }

  function approveAndPay(from, c, amount) {
    return ethCall(c.token_address, SEL.allowance + word(from) + word(c.router_address)).then(function (allowance) {
      var enough = BigInt(allowance || "0x0") >= BigInt(amount);
      var approved = enough ? Promise.resolve() : (step(t("wallet_confirm_approve")),
        send(from, c.token_address, SEL.approve + word(c.router_address) + hex64(amount)));
      return approved.then(function () {
        step(t("wallet_confirm_pay"));
        return send(from, c.router_address, SEL.pay + word(c.token_address) + hex64(amount) + word(c.payment_reference));
      });
    });
  }

  function payWithWallet() {
    var payment = state.payment;
    if (!payment || !window.ethereum || state.walletBusy) {
      return;
    }
    var c = cryptoAction(payment);
    var view = payment.crypto || {};
    // A partial payment asks only for the rest.
    var amount = minus(view.amount || c.amount, view.amount_received || "0");
    if (amount === "0") {
      return;
    }
    state.walletBusy = true;
    $("wallet-pay").disabled = true;
    clear($("wallet-steps"));
    var from = null;
    var chainHex = "0x" + Number(c.chain_id).toString(16);
    step(t("wallet_connect"));
    request("eth_requestAccounts").then(function (accounts) {
      if (!accounts || !accounts.length) {
        throw { message: t("wallet_no_account") };
      }
      from = String(accounts[0]).toLowerCase();
      step(t("wallet_connected", { account: from.slice(0, 6) + "…" + from.slice(-4) }));
      return request("eth_chainId");
    }).then(function (current) {
      if (parseInt(current, 16) === Number(c.chain_id)) {
        return null;
      }
      step(t("wallet_switch", { chain: chainName(c.chain_id) }));
      return request("wallet_switchEthereumChain", [{ chainId: chainHex }]).catch(function (error) {
        if (!error || error.code !== 4902) {
          throw error;
        }
        var addChain = addChainParams(c.chain_id);
        if (!addChain) {
          throw { message: t("wallet_unknown_chain", { chain: chainName(c.chain_id) }) };
        }
        // EIP-3085: the wallet adds the chain (the customer approves it),
        // then switches to it.
        step(t("wallet_add_chain", { chain: chainName(c.chain_id) }));
        return request("wallet_addEthereumChain", [addChain]).then(function () {
          return request("wallet_switchEthereumChain", [{ chainId: chainHex }]);
        });
      });
    }).then(function () {
      if (!c.token_address) {
        step(t("wallet_confirm_pay"));
        return send(from, c.router_address, SEL.payNative + word(c.payment_reference), amount);
      }
      return permitDomain(c.token_address, from).then(function (permit) {
        return permit ? payWithPermit(from, c, amount, permit) : approveAndPay(from, c, amount);
      });
    }).then(function () {
      step(t("wallet_done"), "ok");
      load(true);
    }, function (error) {
      step(walletError(error), "error");
    }).then(function () {
      state.walletBusy = false;
      $("wallet-pay").disabled = false;
    });
  }

  // ------------------------------------------------------------ requests

  function unreachable() {
    message(t("unreachable"), "error");
  }

  // Shows the outcome of a confirm or challenge request.
  function handle(response) {
    var data = response.data;
    var error = data && data.error ? data.error : null;
    if (response.status === 200 && data && data.object === "payment") {
      render(data);
    } else if (response.status === 402 && error && error.payment) {
      render(error.payment, failureText(error));
    } else if (response.status === 404) {
      notFound();
    } else if (response.status === 409) {
      message(error ? error.message : t("conflict"), "error");
      load(true);
    } else if (response.status === 429) {
      message(t("too_many"), "error");
    } else if (response.status >= 400 && response.status < 500 && error) {
      message(error.message, "error");
    } else {
      message(t("server_error"), "error");
    }
  }

  function confirm(paymentMethod) {
    if (state.busy) {
      return Promise.resolve();
    }
    setBusy(true);
    message("");
    var body = { client_secret: state.secret, payment_method: paymentMethod };
    return api("POST", paymentPath() + "/confirm", body)
      .then(handle, unreachable)
      .then(function () {
        setBusy(false);
      });
  }

  function load(quiet) {
    return api("GET", paymentPath() + secretQuery()).then(function (response) {
      show("loading", false);
      var data = response.data;
      if (response.status === 200 && data && data.object === "payment") {
        if (typeof data.merchant_name === "string") {
          state.merchantName = data.merchant_name;
        }
        if (Array.isArray(data.crypto_options)) {
          state.cryptoOptions = data.crypto_options;
        }
        var before = state.payment;
        var changed = !before || before.status !== data.status ||
          JSON.stringify(before.next_action) !== JSON.stringify(data.next_action) ||
          JSON.stringify(before.crypto) !== JSON.stringify(data.crypto);
        if (!quiet || changed) {
          render(data);
        } else if (data.status === "requires_action" || data.status === "processing") {
          schedulePoll(data.crypto ? CRYPTO_POLL_MS : POLL_MS);
        }
      } else if (response.status === 404) {
        notFound();
      } else if (response.status === 401) {
        fail(t("bad_key"));
      } else if (quiet && (response.status >= 500 || response.status === 429)) {
        schedulePoll();
      } else {
        fail(data && data.error ? data.error.message : t("load_failed"));
      }
    }, function () {
      show("loading", false);
      if (quiet) {
        schedulePoll();
      } else {
        fail(t("unreachable_reload"));
      }
    });
  }

  // ------------------------------------------------------------ card form

  function luhn(number) {
    var sum = 0;
    for (var i = 0; i < number.length; i++) {
      var digit = number.charCodeAt(number.length - 1 - i) - 48;
      if (i % 2 === 1) {
        digit *= 2;
        if (digit > 9) {
          digit -= 9;
        }
      }
      sum += digit;
    }
    return sum % 10 === 0;
  }

  function brandOf(number) {
    var n2 = parseInt(number.slice(0, 2), 10);
    var n4 = parseInt(number.slice(0, 4), 10);
    if (/^4/.test(number)) {
      return { name: "Visa", lengths: [13, 16, 19], cvc: 3 };
    }
    if ((n2 >= 51 && n2 <= 55) || (n4 >= 2221 && n4 <= 2720)) {
      return { name: "Mastercard", lengths: [16], cvc: 3 };
    }
    if (n2 === 34 || n2 === 37) {
      return { name: "American Express", lengths: [15], cvc: 4 };
    }
    if (/^(6011|65|64[4-9])/.test(number)) {
      return { name: "Discover", lengths: [16, 19], cvc: 3 };
    }
    if (n4 >= 3528 && n4 <= 3589) {
      return { name: "JCB", lengths: [16, 19], cvc: 3 };
    }
    if (/^62/.test(number)) {
      return { name: "UnionPay", lengths: [16, 17, 18, 19], cvc: 3 };
    }
    if (/^(36|30[0-5]|38|39)/.test(number)) {
      return { name: "Diners Club", lengths: [14, 16, 19], cvc: 3 };
    }
    return null;
  }

  function fieldError(inputIds, errorId, text) {
    var el = $(errorId);
    setText(el, text || "");
    el.hidden = !text;
    inputIds.forEach(function (id) {
      $(id).setAttribute("aria-invalid", text ? "true" : "false");
    });
  }

  // Each check returns the error text, or "" when the field is fine;
  // `complete` asks for a verdict on a partly typed value too.
  function checkNumber(complete) {
    var number = $("card-number").value.replace(/[\s-]/g, "");
    var brand = brandOf(number);
    setText($("card-brand"), brand ? brand.name : "");
    var error = "";
    if (/[^0-9]/.test(number)) {
      error = t("card_digits_only");
    } else if (number.length === 0) {
      error = complete ? t("card_number_missing") : "";
    } else if (number.length > 19 || (complete && number.length < 12)) {
      error = t("card_number_length");
    } else if ((complete || (brand && brand.lengths.indexOf(number.length) >= 0 && number.length === Math.max.apply(null, brand.lengths)) || number.length >= 16) && !luhn(number)) {
      error = t("card_number_invalid");
    }
    fieldError(["card-number"], "card-number-error", error);
    return error;
  }

  function checkExpiry(complete) {
    var monthText = $("card-exp-month").value.trim();
    var yearText = $("card-exp-year").value.trim();
    var month = parseInt(monthText, 10);
    var year = parseInt(yearText, 10);
    if (yearText.length === 2) {
      year += 2000;
    }
    var error = "";
    if ((monthText && !/^[0-9]{1,2}$/.test(monthText)) || (yearText && !/^[0-9]{2,4}$/.test(yearText))) {
      error = t("card_expiry_invalid");
    } else if (monthText.length === 2 && !(month >= 1 && month <= 12)) {
      error = t("card_expiry_invalid");
    } else if (complete && (!(month >= 1 && month <= 12) || !(year >= 2000 && year <= 2100) || yearText.length === 3)) {
      error = t("card_expiry_invalid");
    } else if ((complete || (monthText && (yearText.length === 2 || yearText.length === 4))) && month >= 1 && month <= 12) {
      var now = new Date();
      if (year < now.getFullYear() || (year === now.getFullYear() && month < now.getMonth() + 1)) {
        error = t("card_expired");
      }
    }
    fieldError(["card-exp-month", "card-exp-year"], "card-expiry-error", error);
    return error;
  }

  function checkCvc(complete) {
    var cvc = $("card-cvc").value.trim();
    var brand = brandOf($("card-number").value.replace(/[\s-]/g, ""));
    var want = brand ? brand.cvc : 0;
    var error = "";
    if (/[^0-9]/.test(cvc)) {
      error = t("card_digits_only");
    } else if (complete && !(want ? cvc.length === want : /^[0-9]{3,4}$/.test(cvc))) {
      error = want ? t("card_cvc_brand", { n: want }) : t("card_cvc_invalid");
    }
    fieldError(["card-cvc"], "card-cvc-error", error);
    return error;
  }

  function formatNumberInput() {
    var input = $("card-number");
    var digits = input.value.replace(/[^0-9]/g, "").slice(0, 19);
    var grouped = digits.replace(/(.{4})(?=.)/g, "$1 ");
    if (grouped !== input.value && !/[^0-9\s]/.test(input.value)) {
      input.value = grouped;
    }
    checkNumber(false);
  }

  function onCardSubmit(event) {
    event.preventDefault();
    var numberInput = $("card-number");
    var cvcInput = $("card-cvc");
    var errors = [[checkNumber(true), numberInput], [checkExpiry(true), $("card-exp-month")], [checkCvc(true), cvcInput]];
    for (var i = 0; i < errors.length; i++) {
      if (errors[i][0]) {
        message(errors[i][0], "error");
        errors[i][1].focus();
        return;
      }
    }
    var number = numberInput.value.replace(/[\s-]/g, "");
    var month = parseInt($("card-exp-month").value, 10);
    var yearText = $("card-exp-year").value.trim();
    var year = parseInt(yearText, 10) + (yearText.length === 2 ? 2000 : 0);
    var method = { type: "card", card: { number: number, exp_month: month, exp_year: year, cvc: cvcInput.value.trim() } };
    // Once sent, the code is not kept anywhere; the number is kept in its
    // field only until the payment no longer needs it.
    cvcInput.value = "";
    confirm(method).then(function () {
      var st = state.payment && state.payment.status;
      if (st !== "requires_payment_method" && st !== "failed") {
        numberInput.value = "";
        $("card-exp-month").value = "";
        $("card-exp-year").value = "";
        setText($("card-brand"), "");
      } else {
        numberInput.focus();
      }
    });
  }

  function onEwalletSubmit(event) {
    event.preventDefault();
    confirm({ type: "ewallet", ewallet: { provider: $("ewallet-provider").value } });
  }

  function onOfflineSubmit(event) {
    event.preventDefault();
    if (OFFLINE.indexOf(state.method) >= 0) {
      confirm({ type: state.method });
    }
  }

  function confirmCrypto(option) {
    if (!option) {
      return;
    }
    confirm({ type: "crypto", crypto: { chain_id: option.chain_id, asset: option.asset } });
  }

  function onCryptoSubmit(event) {
    event.preventDefault();
    confirmCrypto(state.cryptoChoice);
  }

  function onRequote() {
    var c = state.payment ? cryptoAction(state.payment) : {};
    confirmCrypto({ chain_id: c.chain_id, asset: String(c.asset || "").toLowerCase() });
  }

  function onChallengeSubmit(event) {
    event.preventDefault();
    if (state.busy) {
      return;
    }
    var code = $("otp-code").value.trim();
    if (!/^[0-9]{1,12}$/.test(code)) {
      message(t("otp_digits"), "error");
      $("otp-code").focus();
      return;
    }
    setBusy(true);
    message("");
    api("POST", paymentPath() + "/challenge", { code: code, client_secret: state.secret })
      .then(handle, unreachable)
      .then(function () {
        $("otp-code").value = "";
        setBusy(false);
        if (!$("challenge").hidden) {
          $("otp-code").focus();
        }
      });
  }

  function start() {
    loadMessages();
    var match = /^\/checkout\/([^/]+)\/?$/.exec(window.location.pathname);
    var params = new URLSearchParams(window.location.search);
    try {
      state.id = match ? decodeURIComponent(match[1]) : "";
    } catch (e) {
      state.id = "";
    }
    state.secret = params.get("client_secret") || "";
    var key = params.get("key") || "";

    $("card-form").addEventListener("submit", onCardSubmit);
    $("card-number").addEventListener("input", formatNumberInput);
    $("card-number").addEventListener("blur", function () {
      if ($("card-number").value) {
        checkNumber(true);
      }
    });
    ["card-exp-month", "card-exp-year"].forEach(function (id) {
      $(id).addEventListener("input", function () {
        checkExpiry(false);
      });
    });
    $("card-cvc").addEventListener("input", function () {
      checkCvc(false);
    });
    $("ewallet-form").addEventListener("submit", onEwalletSubmit);
    $("offline-form").addEventListener("submit", onOfflineSubmit);
    $("crypto-form").addEventListener("submit", onCryptoSubmit);
    $("challenge-form").addEventListener("submit", onChallengeSubmit);
    $("requote").addEventListener("click", onRequote);
    $("wallet-pay").addEventListener("click", payWithWallet);
    $("tab-scan").addEventListener("click", function () {
      chooseTab(false);
    });
    $("tab-wallet").addEventListener("click", function () {
      chooseTab(true);
    });
    $("copy-address").addEventListener("click", function () {
      copy("crypto-address", $("copy-address"));
    });
    $("copy-amount").addEventListener("click", function () {
      copy("crypto-amount-copy", $("copy-amount"));
    });
    $("copy-uri").addEventListener("click", function () {
      copy("crypto-uri", $("copy-uri"));
    });
    $("refresh").addEventListener("click", function () {
      state.polls = 0;
      load(true);
    });

    if (!/^pay_[A-Za-z0-9]{24}$/.test(state.id)) {
      notFound();
      return;
    }
    if (/^sk_/.test(key)) {
      fail(t("link_has_private_key"));
      return;
    }
    if (!state.secret || (key && !/^pk_(test|live)_[A-Za-z0-9]+$/.test(key))) {
      fail(t("incomplete_link"));
      return;
    }
    // Without a publishable key the client secret is the bearer token.
    state.key = key || state.secret;
    load(false);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
