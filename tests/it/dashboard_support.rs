//! A cookie-keeping HTTP client that signs in to the dashboard like a
//! browser does (forms, redirects not followed), and TOTP codes computed
//! from the secret the enrolment page shows.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;

use epg::dashboard::audit_log::Origin;
use epg::dashboard::{Dashboard, Role, totp};

use crate::common::TestApp;

/// A test password that passes the policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// Creates a dashboard user of the app's merchant.
pub async fn create_user(app: &TestApp, email: &str, role: Role) {
    dashboard(app)
        .create_user(
            &app.merchant_id,
            email,
            role,
            PASSWORD,
            &Origin::default(),
            "test",
        )
        .await
        .unwrap();
}

/// The app's dashboard service.
pub fn dashboard(app: &TestApp) -> Dashboard {
    Dashboard::new(
        app.pool.clone(),
        &app.config.keyring().unwrap(),
        app.config.dashboard.clone(),
    )
}

/// Decodes RFC 4648 base32 (no padding).
pub fn base32_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = u32::try_from(ALPHABET.iter().position(|&a| a == c).unwrap()).unwrap();
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).unwrap());
        }
    }
    out
}

/// The code of `secret` `offset` steps from now.
///
/// The node accepts one step either way of its own clock, read when the
/// code arrives. A code from the step before, computed in the last seconds
/// of a step, would be two steps old by then, so such a code waits for the
/// next step to begin first.
pub fn code(secret: &[u8], offset: i64) -> String {
    const MARGIN_MS: i128 = 5_000;
    let step_ms = i128::from(totp::STEP_SECONDS) * 1_000;
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let left_ms = step_ms - now_ms.rem_euclid(step_ms);
    if offset < 0 && left_ms < MARGIN_MS {
        let wait = u64::try_from(left_ms + 100).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(wait));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    totp::code_at(secret, now + offset * totp::STEP_SECONDS)
}

/// The text between `start` and the next `end` in `html`.
pub fn between<'a>(html: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let at = html.find(start)? + start.len();
    let rest = &html[at..];
    Some(&rest[..rest.find(end)?])
}

/// The CSRF token of the first form of a page.
pub fn csrf(html: &str) -> String {
    between(html, "name=\"csrf\" value=\"", "\"")
        .unwrap_or_else(|| panic!("no csrf field in {html}"))
        .to_owned()
}

/// An answer: status, `Location`, body.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

/// A browser-like client: keeps cookies, does not follow redirects.
pub struct Client {
    base: String,
    http: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
}

impl Client {
    pub fn new(app: &TestApp) -> Self {
        Self {
            base: app.address.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, response: reqwest::Response) -> Page {
        for value in response.headers().get_all("set-cookie") {
            let value = value.to_str().unwrap();
            assert!(value.contains("HttpOnly"), "{value}");
            assert!(value.contains("SameSite=Strict"), "{value}");
            let (pair, _) = value.split_once(';').unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || value.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        Page {
            status: response.status().as_u16(),
            location: response
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned()),
            body: response.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(response).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        self.keep(response).await
    }

    /// Password step; the page it redirects to.
    pub async fn password(&mut self, email: &str, password: &str) -> Page {
        let form = self.get("/dashboard/sign-in").await;
        let token = csrf(&form.body);
        self.post(
            "/dashboard/sign-in",
            &[("csrf", &token), ("email", email), ("password", password)],
        )
        .await
    }

    /// First sign-in of a new user: password, enrolment; the TOTP secret.
    pub async fn enrol(&mut self, email: &str) -> Vec<u8> {
        let page = self.password(email, PASSWORD).await;
        assert_eq!(
            page.location.as_deref(),
            Some("/dashboard/enrol"),
            "{page:?}"
        );
        let enrol = self.get("/dashboard/enrol").await;
        assert_eq!(enrol.status, 200, "{}", enrol.body);
        let secret = base32_decode(between(&enrol.body, "<code id=\"secret\">", "<").unwrap());
        let token = csrf(&enrol.body);
        let done = self
            .post(
                "/dashboard/enrol",
                &[("csrf", &token), ("code", &code(&secret, -1))],
            )
            .await;
        assert_eq!(done.status, 200, "{}", done.body);
        assert!(done.body.contains("id=\"recovery-codes\""), "{}", done.body);
        secret
    }

    /// The CSRF token of a signed-in page.
    pub async fn token(&mut self, path: &str) -> String {
        let page = self.get(path).await;
        assert_eq!(page.status, 200, "{path}: {page:?}");
        csrf(&page.body)
    }
}
