// The hosted checkout page (/checkout/{payment_id}?client_secret=…&key=pk_…).
//
// Reads the payment's checkout view with the publishable key and the client
// secret, lets the customer pick one of the payment's methods, confirms,
// handles `next_action`, and shows the outcome. Rules kept here:
// - card details go only into the body of the confirm request: never into
//   a URL, the console, cookies or browser storage, and the inputs are
//   cleared once sent;
// - everything shown is set with textContent (never parsed as HTML);
// - only a publishable key is used: a secret key in the link is refused.
(function () {
  "use strict";

  var METHOD_LABELS = {
    card: "Card",
    bank_transfer: "Bank transfer",
    ewallet: "E-wallet",
    cash_voucher: "Cash voucher",
    check: "Check"
  };
  var OFFLINE_TEXT = {
    bank_transfer: "You will get the bank details to transfer the amount to.",
    cash_voucher: "You will get a voucher to pay in cash at a participating store.",
    check: "You will get the details to mail a check."
  };
  // While the payment waits on the customer or the processor, the page
  // re-reads it this often, for at most POLL_LIMIT reads.
  var POLL_MS = 4000;
  var POLL_LIMIT = 225;

  var state = {
    id: "",
    secret: "",
    key: "",
    payment: null,
    method: null,
    busy: false,
    pollTimer: null,
    polls: 0
  };

  function $(id) {
    return document.getElementById(id);
  }

  function setText(el, value) {
    el.textContent = value === null || value === undefined ? "" : String(value);
  }

  function show(id, visible) {
    $(id).hidden = !visible;
  }

  function hideAll() {
    ["loading", "not-found", "message", "pay", "challenge", "action", "result", "refresh"].forEach(function (id) {
      show(id, false);
    });
  }

  function message(text, kind) {
    var el = $("message");
    setText(el, text);
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

  // One API request with the publishable key. Resolves to {status, data};
  // rejects only when the node cannot be reached.
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
      var format = new Intl.NumberFormat(undefined, { style: "currency", currency: code });
      var digits = format.resolvedOptions().maximumFractionDigits;
      return format.format(amount / Math.pow(10, digits));
    } catch (e) {
      return String(amount) + " " + code;
    }
  }

  function formatTime(unixSeconds) {
    if (typeof unixSeconds !== "number") {
      return "";
    }
    return new Date(unixSeconds * 1000).toLocaleString();
  }

  function setBusy(busy) {
    state.busy = busy;
    var buttons = document.querySelectorAll("#pay button, #challenge button, #refresh");
    Array.prototype.forEach.call(buttons, function (b) {
      b.disabled = busy;
    });
    var radios = document.querySelectorAll("#method-list input");
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

  function schedulePoll() {
    stopPolling();
    if (state.polls >= POLL_LIMIT) {
      return;
    }
    state.pollTimer = window.setTimeout(function () {
      state.pollTimer = null;
      state.polls += 1;
      load(true);
    }, POLL_MS);
  }

  // ------------------------------------------------------------ rendering

  function render(payment, notice) {
    state.payment = payment;
    stopPolling();
    hideAll();
    setText($("amount"), formatAmount(payment.amount, payment.currency));
    setText($("payment-ref"), "Payment " + payment.id);
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
          result("Processing", "Your payment is being processed. This page updates by itself.");
          show("refresh", true);
          schedulePoll();
        }
        break;
      case "requires_capture":
        result("Payment authorized", "Your payment is authorized. The merchant will complete it.", "success");
        break;
      case "succeeded":
        result("Payment successful", "Thank you! Your payment was received.", "success");
        break;
      case "canceled":
        result("Payment canceled", "This payment was canceled. Ask the merchant for a new link if you still want to pay.");
        break;
      default:
        result("Unknown status", "This payment is in a state this page does not know: " + payment.status + ".");
    }
  }

  function failureText(error) {
    if (error && error.message) {
      return error.message + " Try again or use another payment method.";
    }
    return "The payment failed. Try again or use another payment method.";
  }

  function result(title, text, kind) {
    setText($("result-title"), title);
    setText($("result-text"), text);
    $("result").className = kind === "success" ? "notice success" : "notice";
    show("result", true);
  }

  function showMethods(payment) {
    var list = $("method-list");
    while (list.firstChild) {
      list.removeChild(list.firstChild);
    }
    var types = (payment.payment_method_types || []).filter(function (t) {
      return Object.prototype.hasOwnProperty.call(METHOD_LABELS, t);
    });
    if (types.length === 0) {
      fail("None of this payment's methods can be paid on this page.");
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
      label.appendChild(document.createTextNode(METHOD_LABELS[type]));
      list.appendChild(label);
    });
    show("methods", types.length > 1);
    show("pay", true);
    showForm();
  }

  function showForm() {
    var method = state.method;
    show("card-form", method === "card");
    show("ewallet-form", method === "ewallet");
    var offline = Object.prototype.hasOwnProperty.call(OFFLINE_TEXT, method);
    show("offline-form", offline);
    if (offline) {
      setText($("offline-text"), OFFLINE_TEXT[method]);
    }
  }

  function details(pairs) {
    var dl = $("action-details");
    while (dl.firstChild) {
      dl.removeChild(dl.firstChild);
    }
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
    details([]);
    show("action-link", false);
    switch (action.type) {
      case "redirect": {
        var href = safeUrl(action.redirect_url);
        setText($("action-title"), "Approve in your e-wallet");
        setText($("action-text"), href
          ? "Continue to your e-wallet to approve the payment of " + amount + ". This page updates once you have."
          : "The e-wallet link of this payment is not valid. Ask the merchant for help.");
        if (href) {
          $("action-href").href = href;
          show("action-link", true);
        }
        break;
      }
      case "display_voucher": {
        var voucher = action.voucher || {};
        setText($("action-title"), "Pay your voucher");
        setText($("action-text"), "Pay " + amount + " in cash at a participating store with this voucher reference.");
        details([["Reference", voucher.reference], ["Pay before", formatTime(voucher.expires_at)]]);
        break;
      }
      case "bank_transfer_instructions":
        setText($("action-title"), "Transfer the amount");
        setText($("action-text"), "Transfer " + amount + " to this account, quoting the reference exactly.");
        details([["Account holder", action.account_holder], ["IBAN", action.iban], ["Reference", action.reference], ["Amount", amount]]);
        break;
      case "mail_check":
        setText($("action-title"), "Mail a check");
        setText($("action-text"), "Mail a check for " + amount + ", writing the reference on it.");
        details([["Payable to", action.payable_to], ["Reference", action.reference], ["Amount", amount]]);
        break;
      case "crypto_transfer": {
        // Confirmed with crypto by the merchant: show what to send. The
        // payment URI is shown as text, not followed.
        var crypto = action.crypto || {};
        var asset = String(crypto.asset || "").toUpperCase();
        setText($("action-title"), "Send " + asset);
        setText($("action-text"), "Pay " + amount + " by sending exactly this amount through the payment router, with this reference, before the quote expires.");
        details([
          ["Chain", crypto.chain_id],
          ["Amount (base units)", crypto.amount ? crypto.amount + " " + asset : ""],
          ["Token", crypto.token_address],
          ["Router", crypto.router_address],
          ["Reference", crypto.payment_reference],
          ["Payment URI", crypto.uri],
          ["Pay before", formatTime(crypto.expires_at)]
        ]);
        break;
      }
      default:
        setText($("action-title"), "Action needed");
        setText($("action-text"), "Complete the payment as the merchant instructed you.");
    }
    show("action", true);
    show("refresh", true);
    schedulePoll();
  }

  // ------------------------------------------------------------ requests

  function unreachable() {
    message("The payment service could not be reached. Check your connection and try again.", "error");
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
      message(error ? error.message : "This payment cannot be changed now.", "error");
      load(true);
    } else if (response.status === 429) {
      message("Too many attempts. Wait a moment and try again.", "error");
    } else if (response.status >= 400 && response.status < 500 && error) {
      message(error.message, "error");
    } else {
      message("Something went wrong on our side. Please try again.", "error");
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
    var path = paymentPath() + "?client_secret=" + encodeURIComponent(state.secret);
    return api("GET", path).then(function (response) {
      show("loading", false);
      var data = response.data;
      if (response.status === 200 && data && data.object === "payment") {
        var before = state.payment;
        var changed = !before || before.status !== data.status ||
          JSON.stringify(before.next_action) !== JSON.stringify(data.next_action);
        if (!quiet || changed) {
          render(data);
        } else if (data.status === "requires_action" || data.status === "processing") {
          schedulePoll();
        }
      } else if (response.status === 404) {
        notFound();
      } else if (response.status === 401) {
        fail("This checkout link's key is not valid.");
      } else if (quiet && response.status >= 500) {
        schedulePoll();
      } else {
        fail(data && data.error ? data.error.message : "The payment could not be loaded.");
      }
    }, function () {
      show("loading", false);
      if (quiet) {
        schedulePoll();
      } else {
        fail("The payment service could not be reached. Check your connection and reload the page.");
      }
    });
  }

  // ------------------------------------------------------------ forms

  function onCardSubmit(event) {
    event.preventDefault();
    var numberInput = $("card-number");
    var cvcInput = $("card-cvc");
    var number = numberInput.value.replace(/[\s-]/g, "");
    var month = parseInt($("card-exp-month").value, 10);
    var yearText = $("card-exp-year").value.trim();
    var year = parseInt(yearText, 10);
    if (yearText.length === 2) {
      year += 2000;
    }
    var cvc = cvcInput.value.trim();
    if (!/^[0-9]{12,19}$/.test(number)) {
      message("Enter the card number (12 to 19 digits).", "error");
      numberInput.focus();
      return;
    }
    if (!(month >= 1 && month <= 12) || !(year >= 2000 && year <= 2100)) {
      message("Enter the card's expiry month (1–12) and year.", "error");
      return;
    }
    if (!/^[0-9]{3,4}$/.test(cvc)) {
      message("Enter the card's 3 or 4 digit security code.", "error");
      cvcInput.focus();
      return;
    }
    var method = { type: "card", card: { number: number, exp_month: month, exp_year: year, cvc: cvc } };
    // Once sent, the code is not kept anywhere; the number is kept in its
    // field only until the payment no longer needs it.
    cvcInput.value = "";
    confirm(method).then(function () {
      var status = state.payment && state.payment.status;
      if (status !== "requires_payment_method" && status !== "failed") {
        numberInput.value = "";
        $("card-exp-month").value = "";
        $("card-exp-year").value = "";
      }
    });
  }

  function onEwalletSubmit(event) {
    event.preventDefault();
    confirm({ type: "ewallet", ewallet: { provider: $("ewallet-provider").value } });
  }

  function onOfflineSubmit(event) {
    event.preventDefault();
    if (Object.prototype.hasOwnProperty.call(OFFLINE_TEXT, state.method)) {
      confirm({ type: state.method });
    }
  }

  function onChallengeSubmit(event) {
    event.preventDefault();
    if (state.busy) {
      return;
    }
    var code = $("otp-code").value.trim();
    if (!/^[0-9]{1,12}$/.test(code)) {
      message("Enter the digits of the code.", "error");
      return;
    }
    setBusy(true);
    message("");
    api("POST", paymentPath() + "/challenge", { code: code, client_secret: state.secret })
      .then(handle, unreachable)
      .then(function () {
        $("otp-code").value = "";
        setBusy(false);
      });
  }

  function start() {
    var match = /^\/checkout\/([^/]+)\/?$/.exec(window.location.pathname);
    var params = new URLSearchParams(window.location.search);
    try {
      state.id = match ? decodeURIComponent(match[1]) : "";
    } catch (e) {
      state.id = "";
    }
    state.secret = params.get("client_secret") || "";
    state.key = params.get("key") || "";

    $("card-form").addEventListener("submit", onCardSubmit);
    $("ewallet-form").addEventListener("submit", onEwalletSubmit);
    $("offline-form").addEventListener("submit", onOfflineSubmit);
    $("challenge-form").addEventListener("submit", onChallengeSubmit);
    $("refresh").addEventListener("click", function () {
      state.polls = 0;
      load(true);
    });

    if (!/^pay_[A-Za-z0-9]{24}$/.test(state.id)) {
      notFound();
      return;
    }
    if (/^sk_/.test(state.key)) {
      fail("This checkout link is misconfigured: it carries a secret key. Ask the merchant for a new link.");
      return;
    }
    if (!/^pk_(test|live)_[A-Za-z0-9]+$/.test(state.key) || !state.secret) {
      fail("This checkout link is incomplete. Ask the merchant for a new one.");
      return;
    }
    load(false);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
