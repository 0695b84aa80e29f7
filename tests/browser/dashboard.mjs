// Drives Debian's Chromium through the dashboard and /verify with
// playwright-core, for tests/it/dashboard_browser.rs. Reads the scenario
// (JSON) from the file named by argv[2]; prints what it saw as one JSON
// line on stdout. Screenshots go to scenario.screens.
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const s = JSON.parse(readFileSync(process.argv[2], "utf8"));
const out = {};

function base32Decode(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0, buffer = 0;
  const bytes = [];
  for (const c of text) {
    buffer = (buffer << 5) | alphabet.indexOf(c);
    bits += 5;
    if (bits >= 8) { bits -= 8; bytes.push((buffer >> bits) & 0xff); }
  }
  return Buffer.from(bytes);
}

// RFC 6238 with HMAC-SHA-1, 30 s steps, 6 digits; `offset` in steps.
function totp(secret, offset) {
  const step = BigInt(Math.floor(Date.now() / 1000 / 30) + offset);
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(step);
  const h = createHmac("sha1", secret).update(counter).digest();
  const o = h[19] & 0x0f;
  const n = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return String(n % 1_000_000).padStart(6, "0");
}

async function signIn(page, email, password) {
  await page.goto(`${s.base}/dashboard`);
  await page.fill("input[name=email]", email);
  await page.fill("input[name=password]", password);
  await Promise.all([page.waitForNavigation(), page.click("#sign-in button")]);
}

// The node accepts one step either way of its own clock when the code
// arrives: a code from the step before, computed in a step's last seconds,
// would be two steps old by then, so it waits for the next step first.
async function clearOfStepEnd(page) {
  const left = 30_000 - (Date.now() % 30_000);
  if (left < 5_000) await page.waitForTimeout(left + 100);
}

async function enrol(page) {
  const secret = base32Decode((await page.textContent("#secret")).trim());
  await clearOfStepEnd(page);
  await page.fill("#enrol input[name=code]", totp(secret, -1));
  await Promise.all([page.waitForNavigation(), page.click("#enrol button")]);
  return secret;
}

const browser = await chromium.launch({
  executablePath: s.chromium,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  // Admin: first sign-in, enrolment with a wrong code first.
  const admin = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await admin.newPage();
  const errors = [];
  // Script and CSP errors; the 401s and 404 (favicon) the flow provokes on purpose are not.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(m.text());
  });
  await signIn(page, s.admin.email, s.admin.password);
  out.after_password = new URL(page.url()).pathname;
  out.qr_svg = await page.locator("#qr svg").count();
  await page.fill("#enrol input[name=code]", "000000");
  await Promise.all([page.waitForNavigation(), page.click("#enrol button")]);
  out.wrong_enrol_code = await page.textContent("#error");
  await page.screenshot({ path: `${s.screens}/enrol.png`, fullPage: true });
  const secret = await enrol(page);
  out.recovery_codes = await page.locator("#recovery-codes li").count();
  await Promise.all([page.waitForNavigation(), page.click("#continue")]);
  out.home_title = await page.title();
  out.home_balances = await page.locator("#balances .card").count();
  out.home_chart = await page.locator("#chart svg rect").count();
  await page.screenshot({ path: `${s.screens}/home.png`, fullPage: true });

  // Refund with step-up: refused without a code, made with a fresh one.
  await page.goto(`${s.base}/dashboard/payments/${s.payment_id}`);
  await page.fill("#refund input[name=amount]", String(s.refund_amount));
  await Promise.all([page.waitForNavigation(), page.click("#refund button")]);
  out.refund_without_code = await page.textContent("#error");
  await page.fill("#refund input[name=amount]", String(s.refund_amount));
  await page.fill("#refund input[name=code]", totp(secret, 0));
  await Promise.all([page.waitForNavigation(), page.click("#refund button")]);
  out.refund_rows = await page.locator("#refunds tbody tr").count();
  out.payment_status = await page.textContent("#payment-status");
  await page.screenshot({ path: `${s.screens}/payment.png`, fullPage: true });

  // CSRF: a forged token is refused.
  const forged = await page.request.post(`${s.base}/dashboard/payments/${s.payment_id}/refund`, {
    form: { csrf: "forged", amount: "1", code: "" }, maxRedirects: 0,
  });
  out.csrf_forged_status = forged.status();

  // CSV export, as the browser downloads it.
  const csv = await page.request.get(`${s.base}/dashboard/payments.csv`);
  out.csv = await csv.text();

  // The live feed: an event committed now appears without a reload.
  await page.goto(`${s.base}/dashboard`);
  await page.waitForTimeout(500);
  const created = await fetch(`${s.base}/v1/payments`, {
    method: "POST",
    headers: { Authorization: `Bearer ${s.secret_key}`, "Content-Type": "application/json" },
    body: JSON.stringify({ amount: 1234, currency: "usd" }),
  }).then((r) => r.json());
  await fetch(`${s.base}/v1/payments/${created.id}/confirm`, {
    method: "POST",
    headers: { Authorization: `Bearer ${s.secret_key}`, "Content-Type": "application/json" },
    body: JSON.stringify({ payment_method: { type: "card", card: { number: "4242424242424242", exp_month: 12, exp_year: 2034, cvc: "123" } } }),
  });
  await page.waitForSelector(`#feed a[href="/dashboard/payments/${created.id}"]`, { timeout: 15000 });
  out.feed_items = await page.locator("#feed li").count();

  // The audit log.
  await page.goto(`${s.base}/dashboard/audit-log`);
  out.audit_actions = await page.locator("#audit-log tbody td code").allTextContents();
  out.console_errors = errors;

  // Lockout: five wrong passwords.
  const stranger = await browser.newContext();
  const p2 = await stranger.newPage();
  for (let i = 0; i < 5; i++) await signIn(p2, s.locked.email, "wrong password!!");
  out.lockout_message = await p2.textContent("#error");
  await signIn(p2, s.locked.email, s.locked.password);
  out.locked_with_right_password = await p2.textContent("#error");

  // A role that may not refund.
  const analyst = await browser.newContext();
  const p3 = await analyst.newPage();
  await signIn(p3, s.analyst.email, s.analyst.password);
  await enrol(p3);
  await p3.goto(`${s.base}/dashboard/payments/${s.payment_id}`);
  out.analyst_refund_forms = await p3.locator("#refund").count();
  const token = await p3.getAttribute("header form input[name=csrf]", "value");
  const refused = await p3.request.post(`${s.base}/dashboard/payments/${s.payment_id}/refund`, {
    form: { csrf: token, amount: "1", code: "" }, maxRedirects: 0,
  });
  out.analyst_refund_status = refused.status();

  // Another role refused: an analyst may not create API keys, whatever the form says.
  const keyRefused = await p3.request.post(`${s.base}/dashboard/api-keys`, {
    form: { csrf: token, kind: "secret", code: "123456" }, maxRedirects: 0,
  });
  out.analyst_key_status = keyRefused.status();

  // Settlements: the admin sees the settlement made before the run.
  await page.goto(`${s.base}/dashboard/settlements`);
  out.settlement_rows = await page.locator("#settlements tbody tr").count();
  await page.click("#settlements tbody tr a");
  out.settlement_anchor = (await page.textContent("#anchor")).trim();
  out.settlement_verify_link = await page.getAttribute("#verify-link", "href");
  await page.screenshot({ path: `${s.screens}/settlements.png`, fullPage: true });

  // An invitation, end to end: the admin invites with a fresh code, the
  // invitee opens the link in another browser, chooses a password, enrols.
  await page.goto(`${s.base}/dashboard/team`);
  await page.fill("#invite input[name=email]", s.invitee.email);
  await page.selectOption("#invite select[name=role]", "developer");
  await page.fill("#invite input[name=code]", totp(secret, 1));
  await Promise.all([page.waitForNavigation(), page.click("#invite button")]);
  const link = (await page.textContent("#invite-link")).trim();
  const invitee = await browser.newContext();
  const p5 = await invitee.newPage();
  await p5.goto(link);
  out.invitee_email = await p5.textContent("#invitee");
  await p5.fill("#accept input[name=password]", s.invitee.password);
  await p5.fill("#accept input[name=password_again]", s.invitee.password);
  await Promise.all([p5.waitForNavigation(), p5.click("#accept button")]);
  out.invitee_after_accept = new URL(p5.url()).pathname;
  const inviteeSecret = await enrol(p5);
  await Promise.all([p5.waitForNavigation(), p5.click("#continue")]);
  out.invitee_who = (await p5.textContent("header .who")).trim();
  const reused = await (await browser.newContext()).request.get(link, { maxRedirects: 0 });
  out.invite_reused_status = reused.status();

  // The invitee (a developer) adds a webhook endpoint with a fresh code,
  // sees an event's delivery with its request and response, redelivers it.
  await p5.goto(`${s.base}/dashboard/webhooks`);
  await p5.fill("#create-endpoint input[name=url]", s.receiver_url);
  await p5.fill("#create-endpoint input[name=enabled_events]", "payment.succeeded");
  await p5.fill("#create-endpoint input[name=code]", totp(inviteeSecret, 0));
  await Promise.all([p5.waitForNavigation(), p5.click("#create-endpoint button")]);
  out.endpoint_secret = (await p5.textContent("#endpoint-secret")).trim();
  const hooked = await fetch(`${s.base}/v1/payments`, {
    method: "POST",
    headers: { Authorization: `Bearer ${s.secret_key}`, "Content-Type": "application/json" },
    body: JSON.stringify({ amount: 2222, currency: "usd", confirm: true, payment_method: { type: "card", card: { number: "4242424242424242", exp_month: 12, exp_year: 2034, cvc: "123" } } }),
  }).then((r) => r.json());
  out.hooked_payment = hooked.id;
  // The event page, reloaded until the worker has recorded the first attempt.
  await p5.goto(`${s.base}/dashboard/webhooks`);
  await p5.click('#events tbody tr:has-text("payment.succeeded") a >> nth=0');
  out.event_path = new URL(p5.url()).pathname;
  for (let i = 0; i < 150 && (await p5.locator(".attempts tbody tr").count()) === 0; i++) {
    await p5.waitForTimeout(200);
    await p5.reload();
  }
  out.event_request_has_payment = (await p5.textContent("#request")).includes(hooked.id);
  out.attempt_rows = await p5.locator(".attempts tbody tr").count();
  await Promise.all([p5.waitForNavigation(), p5.click("#redeliver button")]);
  out.redeliver_notice = await p5.textContent("#notice");

  // Step-up key roll: refused without a code, done with a fresh one.
  await p5.goto(`${s.base}/dashboard/api-keys`);
  const roll = '#keys tr:has-text("publishable") form.roll';
  await p5.fill(`${roll} input[name=code]`, "000000");
  await Promise.all([p5.waitForNavigation(), p5.click(`${roll} button`)]);
  out.roll_wrong_code = await p5.textContent("#error");
  await p5.fill(`${roll} input[name=code]`, totp(inviteeSecret, 1));
  await Promise.all([p5.waitForNavigation(), p5.click(`${roll} button`)]);
  out.rolled_key = (await p5.textContent("#new-key")).trim();
  await p5.screenshot({ path: `${s.screens}/api-keys.png`, fullPage: true });

  // /verify: every bundle, valid or tampered.
  const auditor = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const p4 = await auditor.newPage();
  out.verify = [];
  for (const b of s.bundles) {
    await p4.goto(`${s.base}/verify`);
    await p4.fill("#bundle", b.json);
    await p4.fill("#rpc", s.rpc_url);
    await p4.click("#run");
    await p4.waitForSelector("body[data-verdict=pass], body[data-verdict=fail]", { timeout: 30000 });
    const checks = await p4.locator("#checks li").evaluateAll((lis) =>
      lis.map((li) => ({ name: li.dataset.check, status: li.className, text: li.textContent })));
    out.verify.push({ name: b.name, verdict: await p4.textContent("#verdict"), checks });
    if (b.name === "valid") await p4.screenshot({ path: `${s.screens}/verify.png`, fullPage: true });
    if (b.name === "leaf byte") await p4.screenshot({ path: `${s.screens}/verify-tampered.png`, fullPage: true });
  }
} catch (e) {
  // Say where the browser was, for the test's failure message.
  for (const context of browser.contexts()) {
    for (const p of context.pages()) {
      console.error(`page ${p.url()}:\n${(await p.content()).slice(0, 3000)}`);
      await p.screenshot({ path: `${s.screens}/failure.png`, fullPage: true }).catch(() => {});
    }
  }
  throw e;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
