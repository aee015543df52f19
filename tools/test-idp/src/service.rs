//! The endpoints: token, device code, introspection and the test control API, over one shared
//! state (tokens, device codes, fault injection, counters).

use crate::directory::{self, App, Grant};
use crate::errors::{aad, AadError, Ctx, KNOWN_CODES};
use crate::graph::{self, GraphDirectory};
use crate::util::{b64url, json_str, parse_form, random_bytes, random_text, unix_now};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// What the HTTP layer does with a request.
#[derive(Debug)]
pub enum Reply {
    /// Answer with this status, content type and body.
    Answer(u16, &'static str, String),
    /// Close the connection without answering ("down").
    Close,
    /// Hold the connection without answering for a minute, then close ("slow").
    Hang,
}

fn json(status: u16, body: String) -> Reply {
    Reply::Answer(status, "application/json; charset=utf-8", body)
}

fn aad_reply(e: AadError) -> Reply {
    json(e.status, e.body())
}

/// How the token endpoint behaves (fault injection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Down,
    Slow,
    Garbage,
}

/// How introspection behaves (fault injection for Dovecot's side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntrospectMode {
    Normal,
    /// HTTP 500.
    Error,
    /// `{"active":true}` without a username.
    NoUser,
    /// No answer within a minute.
    Slow,
}

#[derive(Debug, Default, Clone)]
struct Stats {
    token_requests: u64,
    password: u64,
    refresh_token: u64,
    client_credentials: u64,
    device_code: u64,
    other_grant: u64,
    token_errors: u64,
    slow_down: u64,
    devicecode_requests: u64,
    introspections: u64,
    introspections_active: u64,
}

impl Stats {
    fn json(&self) -> String {
        format!(
            "{{\"token_requests\":{},\"password\":{},\"refresh_token\":{},\"client_credentials\":{},\"device_code\":{},\"other_grant\":{},\"token_errors\":{},\"slow_down\":{},\"devicecode_requests\":{},\"introspections\":{},\"introspections_active\":{}}}",
            self.token_requests, self.password, self.refresh_token, self.client_credentials,
            self.device_code, self.other_grant, self.token_errors, self.slow_down,
            self.devicecode_requests, self.introspections, self.introspections_active
        )
    }
}

/// Settings a test may change, globally or for one subject (a user, or an app for client
/// credentials) so parallel tests do not disturb each other.
#[derive(Debug, Default, Clone)]
struct Overrides {
    mode: Option<Mode>,
    access_ttl: Option<u64>,
    strict_rotation: Option<bool>,
    fail_next: VecDeque<u32>,
}

#[derive(Debug)]
struct Access {
    principal: String,
    client_id: String,
    scope: String,
    imap: bool,
    /// Application roles (app-only Graph tokens).
    roles: Vec<String>,
    expires: Instant,
    exp_unix: u64,
}

#[derive(Debug, PartialEq, Eq)]
enum RefreshState {
    Live,
    RotatedOut,
    Revoked,
}

#[derive(Debug)]
struct Refresh {
    user: String,
    client_id: String,
    scope: String,
    state: RefreshState,
}

#[derive(Debug, PartialEq, Eq)]
enum DeviceStatus {
    Pending,
    Approved(String),
    Declined,
    Redeemed,
}

#[derive(Debug)]
struct Device {
    user_code: String,
    client_id: String,
    grant: Grant,
    expires: Instant,
    interval: u64,
    last_poll: Option<Instant>,
    status: DeviceStatus,
    created: Instant,
}

/// The whole identity endpoint state.
#[derive(Debug)]
pub struct Service {
    password: String,
    global: Overrides,
    per_subject: HashMap<String, Overrides>,
    stats: Stats,
    subject_stats: HashMap<String, Stats>,
    access: HashMap<String, Access>,
    refresh: HashMap<String, Refresh>,
    devices: HashMap<String, Device>,
    device_interval: u64,
    device_expires: u64,
    introspect_mode: IntrospectMode,
    /// Introspection faults for the tokens of one principal only.
    introspect_modes: HashMap<String, IntrospectMode>,
    /// Users whose password was changed (`set_password`), lower-cased.
    passwords: HashMap<String, String>,
    /// Graph permissions of the apps (consent, application roles).
    graph: GraphDirectory,
    /// Bumped by reset so hanging connections give up.
    pub generation: u64,
}

const DEFAULT_ACCESS_TTL: u64 = 3599;

impl Service {
    /// A fresh directory where every user's password is `password`.
    pub fn new(password: &str) -> Self {
        Service {
            password: password.to_string(),
            global: Overrides::default(),
            per_subject: HashMap::new(),
            stats: Stats::default(),
            subject_stats: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            devices: HashMap::new(),
            device_interval: 5,
            device_expires: 900,
            introspect_mode: IntrospectMode::Normal,
            introspect_modes: HashMap::new(),
            passwords: HashMap::new(),
            graph: GraphDirectory::default(),
            generation: 0,
        }
    }

    /// Routes one request. `path` may carry a query string.
    pub fn handle(&mut self, method: &str, path: &str, body: &str) -> Reply {
        let (route, query) = path.split_once('?').unwrap_or((path, ""));
        let mut params = parse_form(query);
        params.extend(parse_form(body));
        if let Some(cmd) = route.strip_prefix("/_test/") {
            return self.control(cmd, &params);
        }
        if route == "/introspect" && method == "POST" {
            return self.introspect(&params);
        }
        if route == "/introspect/claims" && method == "POST" {
            return self.introspect_claims(&params);
        }
        let parts: Vec<&str> = route.trim_start_matches('/').split('/').collect();
        match parts.as_slice() {
            [tenant, "oauth2", "v2.0", "token"] if method == "POST" => self.token(tenant, &params),
            [tenant, "v2.0", ".well-known", "openid-configuration"] if method == "GET" => {
                crate::tenant::openid_configuration(tenant)
            }
            [tenant, "oauth2", "v2.0", "devicecode"] if method == "POST" => {
                self.devicecode(tenant, &params)
            }
            [_, "oauth2", "v2.0", "token" | "devicecode"] => json(
                405,
                "{\"error\":\"invalid_request\",\"error_description\":\"AADSTS900561: The endpoint only accepts POST requests.\"}".into(),
            ),
            _ => json(404, "{\"error\":\"not_found\"}".into()),
        }
    }

    fn overrides(&self, subject: Option<&str>) -> Overrides {
        let mut o = self.global.clone();
        if let Some(s) = subject.and_then(|s| self.per_subject.get(s)) {
            if s.mode.is_some() {
                o.mode = s.mode;
            }
            if s.access_ttl.is_some() {
                o.access_ttl = s.access_ttl;
            }
            if s.strict_rotation.is_some() {
                o.strict_rotation = s.strict_rotation;
            }
        }
        o
    }

    /// Pops an injected failure for this subject (its own queue first, then the global one).
    fn take_failure(&mut self, subject: Option<&str>) -> Option<u32> {
        if let Some(s) = subject.and_then(|s| self.per_subject.get_mut(s)) {
            if let Some(code) = s.fail_next.pop_front() {
                return Some(code);
            }
        }
        self.global.fail_next.pop_front()
    }

    fn count(&mut self, subject: Option<&str>, f: impl Fn(&mut Stats)) {
        f(&mut self.stats);
        if let Some(s) = subject {
            f(self.subject_stats.entry(s.to_string()).or_default());
        }
    }

    fn token(&mut self, tenant: &str, p: &[(String, String)]) -> Reply {
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let grant = get("grant_type").unwrap_or("");
        let client_id = get("client_id").unwrap_or("");
        // Whom the request is about, for scoped fault injection and counters.
        let subject: Option<String> = match grant {
            "password" => get("username").map(|u| u.trim().to_ascii_lowercase()),
            "client_credentials" => Some(client_id.to_string()),
            "refresh_token" => get("refresh_token")
                .and_then(|t| self.refresh.get(t))
                .map(|r| r.user.clone()),
            "urn:ietf:params:oauth:grant-type:device_code" => get("device_code")
                .and_then(|d| self.devices.get(d))
                .and_then(|d| match &d.status {
                    DeviceStatus::Approved(u) => Some(u.clone()),
                    _ => None,
                }),
            _ => None,
        };
        let subject = subject.as_deref();
        self.count(subject, |s| {
            s.token_requests += 1;
            match grant {
                "password" => s.password += 1,
                "refresh_token" => s.refresh_token += 1,
                "client_credentials" => s.client_credentials += 1,
                "urn:ietf:params:oauth:grant-type:device_code" => s.device_code += 1,
                _ => s.other_grant += 1,
            }
        });
        let o = self.overrides(subject);
        match o.mode.unwrap_or(Mode::Normal) {
            Mode::Normal => {}
            Mode::Down => return Reply::Close,
            Mode::Slow => return Reply::Hang,
            Mode::Garbage => return garbage(),
        }
        let short_grant = if grant == "refresh_token" {
            "refresh_token"
        } else {
            "password"
        };
        let scope = get("scope").unwrap_or("");
        let ctx = Ctx {
            client_id,
            tenant,
            scope,
            param: "",
            grant: short_grant,
        };
        let result = match self.take_failure(subject) {
            Some(code) => Err(code),
            None => self.grant(tenant, grant, client_id, &o, p),
        };
        match result {
            Ok(body) => json(200, body),
            Err(code) => {
                self.count(subject, |s| s.token_errors += 1);
                if code == 70020 {
                    self.count(subject, |s| s.slow_down += 1);
                }
                let param = match code {
                    900144 => missing_param(grant, p),
                    70003 => grant.to_string(),
                    _ => String::new(),
                };
                let ctx = Ctx {
                    param: &param,
                    ..ctx
                };
                aad_reply(aad(code, &ctx).unwrap_or_else(|| aad(70000, &ctx).expect("70000")))
            }
        }
    }

    fn grant(
        &mut self,
        tenant: &str,
        grant: &str,
        client_id: &str,
        o: &Overrides,
        p: &[(String, String)],
    ) -> Result<String, u32> {
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if grant.is_empty() {
            return Err(900144);
        }
        directory::check_tenant(tenant)?;
        if client_id.is_empty() {
            return Err(900144);
        }
        let ttl = o.access_ttl.unwrap_or(DEFAULT_ACCESS_TTL);
        if grant == "client_credentials" && crate::certs::is_cert_app(client_id) {
            crate::certs::authenticate(client_id, tenant, p)?;
            let g = directory::app_scope(get("scope").unwrap_or(""))?;
            return Ok(self.issue(client_id, client_id, &g, ttl));
        }
        let app = directory::app(client_id).ok_or(700016u32)?;
        let secret = get("client_secret");
        match grant {
            "password" => {
                directory::authenticate_client(app, secret, true)?;
                let (Some(user), Some(password)) = (get("username"), get("password")) else {
                    return Err(900144);
                };
                let g = self.delegated_scope(client_id, get("scope").unwrap_or(""))?;
                let current = self
                    .passwords
                    .get(&user.trim().to_ascii_lowercase())
                    .unwrap_or(&self.password);
                let user = directory::sign_in(user, password, current)?;
                if app == App::NoConsent {
                    return Err(65001);
                }
                Ok(self.issue(&user, client_id, &g, ttl))
            }
            "refresh_token" => {
                directory::authenticate_client(app, secret, true)?;
                let token = get("refresh_token").ok_or(900144u32)?;
                let r = self.refresh.get(token).ok_or(9002313u32)?;
                if r.client_id != client_id {
                    return Err(70000);
                }
                match r.state {
                    RefreshState::Revoked => return Err(50173),
                    RefreshState::RotatedOut if o.strict_rotation.unwrap_or(false) => {
                        return Err(70000)
                    }
                    _ => {}
                }
                let user = r.user.clone();
                let scope = match get("scope") {
                    Some(s) if !s.trim().is_empty() => s.to_string(),
                    _ => r.scope.clone(),
                };
                let mut g = self.delegated_scope(client_id, &scope)?;
                // The refresh token itself carries offline access.
                g.offline = true;
                directory::account_condition(&user)?;
                if let Some(r) = self.refresh.get_mut(token) {
                    r.state = RefreshState::RotatedOut;
                }
                Ok(self.issue(&user, client_id, &g, ttl))
            }
            "client_credentials" => {
                directory::authenticate_client(app, secret, false)?;
                let g = directory::app_scope(get("scope").unwrap_or(""))?;
                Ok(self.issue(client_id, client_id, &g, ttl))
            }
            "urn:ietf:params:oauth:grant-type:device_code" => {
                let code = get("device_code").ok_or(900144u32)?;
                let now = Instant::now();
                let d = self.devices.get_mut(code).ok_or(70000u32)?;
                if d.client_id != client_id {
                    return Err(70000);
                }
                if now >= d.expires {
                    return Err(70019);
                }
                let too_fast = d
                    .last_poll
                    .is_some_and(|t| now.duration_since(t) < Duration::from_secs(d.interval));
                d.last_poll = Some(now);
                if too_fast {
                    return Err(70020);
                }
                directory::authenticate_client(app, secret, true)?;
                match &d.status {
                    DeviceStatus::Pending => Err(70016),
                    DeviceStatus::Declined => Err(70021),
                    DeviceStatus::Redeemed => Err(70000),
                    DeviceStatus::Approved(user) => {
                        let user = user.clone();
                        let g = d.grant.clone();
                        d.status = DeviceStatus::Redeemed;
                        if app == App::NoConsent {
                            return Err(65001);
                        }
                        Ok(self.issue(&user, client_id, &g, ttl))
                    }
                }
            }
            _ => Err(70003),
        }
    }

    /// Issues an access token (and a refresh token for offline access to a user) and returns
    /// Microsoft's success body.
    fn issue(&mut self, principal: &str, client_id: &str, g: &Grant, ttl: u64) -> String {
        let now = unix_now();
        let roles = self.graph.roles_for(principal, client_id, &g.scope);
        let access = access_token(principal, client_id, &g.scope, &roles, now, ttl);
        self.access.insert(
            access.clone(),
            Access {
                principal: principal.to_string(),
                client_id: client_id.to_string(),
                scope: g.scope.clone(),
                imap: g.imap,
                roles,
                expires: Instant::now() + Duration::from_secs(ttl),
                exp_unix: now + ttl,
            },
        );
        let is_user = principal.contains('@');
        let mut body = format!(
            "{{\"token_type\":\"Bearer\",\"scope\":{},\"expires_in\":{ttl},\"ext_expires_in\":{ttl},\"access_token\":{}",
            json_str(&g.scope),
            json_str(&access)
        );
        if is_user && g.offline {
            let refresh = format!("1.AQ{}", random_text(1000));
            self.refresh.insert(
                refresh.clone(),
                Refresh {
                    user: principal.to_string(),
                    client_id: client_id.to_string(),
                    scope: format!("{} offline_access", g.scope),
                    state: RefreshState::Live,
                },
            );
            body.push_str(&format!(",\"refresh_token\":{}", json_str(&refresh)));
        }
        body.push('}');
        body
    }

    fn devicecode(&mut self, tenant: &str, p: &[(String, String)]) -> Reply {
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        self.count(None, |s| s.devicecode_requests += 1);
        match self.global.mode.unwrap_or(Mode::Normal) {
            Mode::Normal => {}
            Mode::Down => return Reply::Close,
            Mode::Slow => return Reply::Hang,
            Mode::Garbage => return garbage(),
        }
        let client_id = get("client_id").unwrap_or("");
        let scope = get("scope").unwrap_or("");
        let ctx = Ctx {
            client_id,
            tenant,
            scope,
            param: "client_id",
            ..Ctx::default()
        };
        let result = (|| -> Result<Grant, u32> {
            directory::check_tenant(tenant)?;
            if client_id.is_empty() {
                return Err(900144);
            }
            directory::app(client_id).ok_or(700016u32)?;
            self.delegated_scope(client_id, scope)
        })();
        let grant = match result {
            Ok(g) => g,
            Err(code) => return aad_reply(aad(code, &ctx).expect("known code")),
        };
        let device_code = format!("DAQABIQEAAAD{}", random_text(150));
        let user_code: String = random_bytes(9)
            .iter()
            .map(|b| b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789"[(*b % 32) as usize] as char)
            .collect();
        let now = Instant::now();
        self.devices.insert(
            device_code.clone(),
            Device {
                user_code: user_code.clone(),
                client_id: client_id.to_string(),
                grant,
                expires: now + Duration::from_secs(self.device_expires),
                interval: self.device_interval,
                last_poll: None,
                status: DeviceStatus::Pending,
                created: now,
            },
        );
        let uri = "https://microsoft.com/devicelogin";
        let message = format!("To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate.");
        json(
            200,
            format!(
                "{{\"user_code\":{},\"device_code\":{},\"verification_uri\":{},\"expires_in\":{},\"interval\":{},\"message\":{}}}",
                json_str(&user_code),
                json_str(&device_code),
                json_str(uri),
                self.device_expires,
                self.device_interval,
                json_str(&message)
            ),
        )
    }

    fn introspect(&mut self, p: &[(String, String)]) -> Reply {
        let token = p
            .iter()
            .find(|(n, _)| n == "token")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let known = self.access.get(token);
        let mode = known
            .and_then(|a| self.introspect_modes.get(&a.principal))
            .copied()
            .unwrap_or(self.introspect_mode);
        let live = known.filter(|a| a.imap && Instant::now() < a.expires);
        let principal = live.map(|a| a.principal.clone());
        let body = live.map(|a| {
            format!(
                "{{\"active\":true,\"username\":{},\"client_id\":{},\"scope\":{},\"exp\":{}}}",
                json_str(&a.principal),
                json_str(&a.client_id),
                json_str(&a.scope),
                a.exp_unix
            )
        });
        self.count(principal.as_deref(), |s| {
            s.introspections += 1;
            if body.is_some() {
                s.introspections_active += 1;
            }
        });
        match mode {
            IntrospectMode::Normal => {}
            IntrospectMode::Error => {
                return Reply::Answer(500, "text/plain", "introspection failed\n".into())
            }
            IntrospectMode::NoUser => return json(200, "{\"active\":true}".into()),
            IntrospectMode::Slow => return Reply::Hang,
        }
        json(200, body.unwrap_or_else(|| "{\"active\":false}".into()))
    }

    fn control(&mut self, cmd: &str, p: &[(String, String)]) -> Reply {
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let user = get("user").map(|u| u.trim().to_ascii_lowercase());
        let bad = |msg: String| {
            json(
                400,
                format!("{{\"ok\":false,\"error\":{}}}", json_str(&msg)),
            )
        };
        let ok = || json(200, "{\"ok\":true}".into());
        if let Some(reply) = crate::certs::control(cmd, p) {
            return reply;
        }
        match cmd {
            "reset" => {
                match user {
                    Some(u) => {
                        self.per_subject.remove(&u);
                        self.subject_stats.remove(&u);
                        self.introspect_modes.remove(&u);
                        self.passwords.remove(&u);
                    }
                    None => {
                        let generation = self.generation + 1;
                        *self = Service::new(&self.password.clone());
                        self.generation = generation;
                    }
                }
                ok()
            }
            "expire_access_tokens" => {
                let past = Instant::now();
                for a in self.access.values_mut() {
                    if user.as_ref().is_none_or(|u| *u == a.principal) {
                        a.expires = past;
                    }
                }
                ok()
            }
            "revoke" => {
                let Some(u) = user else {
                    return bad("revoke needs user=".into());
                };
                for r in self.refresh.values_mut() {
                    if r.user == u {
                        r.state = RefreshState::Revoked;
                    }
                }
                let past = Instant::now();
                for a in self.access.values_mut() {
                    if a.principal == u {
                        a.expires = past;
                    }
                }
                ok()
            }
            "set_password" => {
                // As a password change at Microsoft: the old password stops working and every
                // refresh token of the user is revoked (AADSTS50173).
                let (Some(u), Some(pw)) = (user, get("password")) else {
                    return bad("set_password needs user= and password=".into());
                };
                for r in self.refresh.values_mut() {
                    if r.user == u {
                        r.state = RefreshState::Revoked;
                    }
                }
                self.passwords.insert(u, pw.to_string());
                ok()
            }
            "fail_next" => {
                let Some(code) = get("code").and_then(|c| c.parse::<u32>().ok()) else {
                    return bad("fail_next needs code=<AADSTS number>".into());
                };
                if !KNOWN_CODES.contains(&code) {
                    return bad(format!(
                        "unknown AADSTS code {code}; known: {KNOWN_CODES:?}"
                    ));
                }
                let count = get("count")
                    .and_then(|c| c.parse::<usize>().ok())
                    .unwrap_or(1);
                let o = self.scope_mut(user);
                o.fail_next.extend(std::iter::repeat_n(code, count));
                ok()
            }
            "mode" => {
                let mode = match get("m") {
                    Some("normal") => Mode::Normal,
                    Some("down") => Mode::Down,
                    Some("slow") => Mode::Slow,
                    Some("garbage") => Mode::Garbage,
                    other => return bad(format!("mode m={other:?}: use normal|down|slow|garbage")),
                };
                self.scope_mut(user).mode = Some(mode);
                ok()
            }
            "introspect" => {
                let mode = match get("m") {
                    Some("normal") => IntrospectMode::Normal,
                    Some("error") => IntrospectMode::Error,
                    Some("nouser") => IntrospectMode::NoUser,
                    Some("slow") => IntrospectMode::Slow,
                    other => {
                        return bad(format!(
                            "introspect m={other:?}: use normal|error|nouser|slow"
                        ))
                    }
                };
                match user {
                    Some(u) => {
                        self.introspect_modes.insert(u, mode);
                    }
                    None => self.introspect_mode = mode,
                }
                ok()
            }
            "set" => {
                let num = |k: &str| get(k).map(|v| v.parse::<u64>().map_err(|_| k.to_string()));
                let (ttl, interval, expires) = match (
                    num("access_ttl").transpose(),
                    num("device_interval").transpose(),
                    num("device_expires").transpose(),
                ) {
                    (Ok(a), Ok(b), Ok(c)) => (a, b, c),
                    (Err(k), _, _) | (_, Err(k), _) | (_, _, Err(k)) => {
                        return bad(format!("{k} must be a number of seconds"))
                    }
                };
                let strict = get("strict_rotation").map(|v| v == "1" || v == "true");
                if let Some(i) = interval {
                    self.device_interval = i;
                }
                if let Some(e) = expires {
                    self.device_expires = e;
                }
                let o = self.scope_mut(user);
                if ttl.is_some() {
                    o.access_ttl = ttl;
                }
                if strict.is_some() {
                    o.strict_rotation = strict;
                }
                ok()
            }
            "approve_device" | "decline_device" => {
                let code = get("user_code");
                let client = get("client_id");
                // Without user_code: the newest pending request (of client_id when given).
                let target = self
                    .devices
                    .values_mut()
                    .filter(|d| d.status == DeviceStatus::Pending)
                    .filter(|d| code.is_none_or(|c| c.eq_ignore_ascii_case(&d.user_code)))
                    .filter(|d| client.is_none_or(|c| c == d.client_id))
                    .max_by_key(|d| d.created);
                let Some(d) = target else {
                    return bad("no pending device code matches".into());
                };
                if cmd == "decline_device" {
                    d.status = DeviceStatus::Declined;
                    return ok();
                }
                let Some(u) = user else {
                    return bad("approve_device needs user=".into());
                };
                match directory::find_user(&u) {
                    Ok(u) => {
                        d.status = DeviceStatus::Approved(u);
                        json(
                            200,
                            format!("{{\"ok\":true,\"user_code\":{}}}", json_str(&d.user_code)),
                        )
                    }
                    Err(_) => bad(format!("{u} is not a user of the directory")),
                }
            }
            "stats" => {
                let s = match &user {
                    Some(u) => self.subject_stats.get(u).cloned().unwrap_or_default(),
                    None => self.stats.clone(),
                };
                json(200, s.json())
            }
            _ => match self.graph.control(cmd, p) {
                Some(Ok(())) => ok(),
                Some(Err(msg)) => bad(msg),
                None => json(
                    404,
                    format!(
                        "{{\"ok\":false,\"error\":{}}}",
                        json_str(&format!("unknown control command {cmd}"))
                    ),
                ),
            },
        }
    }

    /// A delegated scope request: Graph's rules when it names Graph, else IMAP's.
    fn delegated_scope(&self, client_id: &str, scope: &str) -> Result<Grant, u32> {
        if graph::mentions_graph(scope) {
            self.graph.delegated_scope(client_id, scope)
        } else {
            directory::delegated_scope(scope)
        }
    }

    /// `POST /introspect/claims` (form `token=`): the claims of any live token (audience,
    /// subject, delegated scopes, application roles), for resource servers other than Dovecot
    /// (tools/test-graph); `{"active":false}` for an unknown or expired token.
    fn introspect_claims(&mut self, p: &[(String, String)]) -> Reply {
        let token = p
            .iter()
            .find(|(n, _)| n == "token")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let live = self
            .access
            .get(token)
            .filter(|a| Instant::now() < a.expires);
        let principal = live.map(|a| a.principal.clone());
        let body = live.map(|a| {
            graph::claims_json(&a.principal, &a.client_id, &a.scope, &a.roles, a.exp_unix)
        });
        self.count(principal.as_deref(), |s| {
            s.introspections += 1;
            if body.is_some() {
                s.introspections_active += 1;
            }
        });
        json(200, body.unwrap_or_else(|| "{\"active\":false}".into()))
    }

    fn scope_mut(&mut self, subject: Option<String>) -> &mut Overrides {
        match subject {
            Some(s) => self.per_subject.entry(s).or_default(),
            None => &mut self.global,
        }
    }
}

fn garbage() -> Reply {
    Reply::Answer(
        200,
        "text/html",
        "<html><head><title>Sign in</title></head><body>We can't sign you in right now.</body></html>\n".into(),
    )
}

fn missing_param(grant: &str, p: &[(String, String)]) -> String {
    let has = |k: &str| p.iter().any(|(n, v)| n == k && !v.is_empty());
    let needed: &[&str] = match grant {
        "" => &["grant_type"],
        "password" => &["client_id", "username", "password"],
        "refresh_token" => &["client_id", "refresh_token"],
        "urn:ietf:params:oauth:grant-type:device_code" => &["client_id", "device_code"],
        _ => &["client_id"],
    };
    needed
        .iter()
        .find(|k| !has(k))
        .unwrap_or(&"grant_type")
        .to_string()
}

/// A JWT-shaped access token (header.payload.signature) as long as Microsoft's, so clients meet
/// realistic sizes (well over 1000 bytes in the SASL string).
fn access_token(
    principal: &str,
    client_id: &str,
    scope: &str,
    roles: &[String],
    now: u64,
    ttl: u64,
) -> String {
    let header = b64url(b"{\"typ\":\"JWT\",\"nonce\":\"pma\",\"alg\":\"RS256\",\"x5t\":\"pma-test\",\"kid\":\"pma-test\"}");
    let scp = scope
        .split_whitespace()
        .map(|s| s.rsplit('/').next().unwrap_or(s))
        .collect::<Vec<_>>()
        .join(" ");
    let payload = format!(
        "{{\"aud\":{},\"roles\":[{}],\"iss\":\"https://sts.windows.net/{}/\",\"iat\":{now},\"nbf\":{now},\"exp\":{},\"appid\":{},\"scp\":{},\"upn\":{},\"unique_name\":{},\"tid\":\"{}\",\"oid\":\"{}\",\"sid\":\"{}\",\"aio\":\"{}\",\"rh\":\"{}\",\"acct\":0,\"acr\":\"1\",\"amr\":[\"pwd\"],\"app_displayname\":\"PSA mail agent\",\"appidacr\":\"0\",\"idtyp\":\"user\",\"ipaddr\":\"127.0.0.1\",\"puid\":\"10032003A1B2C3D4\",\"wids\":[\"b79fbf4d-3ef9-4689-8143-76b194e85509\"],\"xms_st\":{{\"sub\":\"{}\"}},\"xms_tcdt\":1589358262,\"uti\":\"{}\",\"ver\":\"1.0\"}}",
        json_str(graph::audience(scope)),
        roles.iter().map(|r| json_str(r)).collect::<Vec<_>>().join(","),
        directory::TENANT,
        now + ttl,
        json_str(client_id),
        json_str(&scp),
        json_str(principal),
        json_str(principal),
        directory::TENANT,
        crate::util::guid(),
        crate::util::guid(),
        random_text(240),
        random_text(90),
        random_text(43),
        random_text(22),
    );
    format!(
        "{header}.{}.{}",
        b64url(payload.as_bytes()),
        b64url(&random_bytes(256))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAP: &str = "https%3A%2F%2Foutlook.office.com%2FIMAP.AccessAsUser.All%20offline_access";

    fn body(r: &Reply) -> (u16, String) {
        match r {
            Reply::Answer(s, _, b) => (*s, b.clone()),
            other => panic!("no answer: {other:?}"),
        }
    }

    fn field(json: &str, name: &str) -> Option<String> {
        let key = format!("\"{name}\":\"");
        let start = json.find(&key)? + key.len();
        Some(json[start..].split('"').next()?.to_string())
    }

    fn password(s: &mut Service, user: &str) -> (u16, String) {
        body(&s.handle(
            "POST",
            "/contoso-tenant/oauth2/v2.0/token",
            &format!(
                "grant_type=password&client_id=app-public&username={user}&password=pw&scope={IMAP}"
            ),
        ))
    }

    fn introspect(s: &mut Service, token: &str) -> String {
        body(&s.handle("POST", "/introspect", &format!("token={token}"))).1
    }

    #[test]
    fn password_grant_then_introspection() {
        let mut s = Service::new("pw");
        let (status, b) = password(&mut s, "Alice@contoso.test");
        assert_eq!(status, 200, "{b}");
        assert!(b.starts_with("{\"token_type\":\"Bearer\",\"scope\":\"https://outlook.office.com/IMAP.AccessAsUser.All\",\"expires_in\":3599,\"ext_expires_in\":3599,\"access_token\":"), "{b}");
        let at = field(&b, "access_token").unwrap();
        assert!(at.len() > 1000, "token length {}", at.len());
        assert!(field(&b, "refresh_token").is_some());
        assert_eq!(
            introspect(&mut s, &at)
                .split(",\"client_id\"")
                .next()
                .unwrap(),
            "{\"active\":true,\"username\":\"alice@contoso.test\""
        );
        assert_eq!(introspect(&mut s, "nope"), "{\"active\":false}");
        s.handle("POST", "/_test/expire_access_tokens", "");
        assert_eq!(introspect(&mut s, &at), "{\"active\":false}");
    }

    #[test]
    fn refresh_rotates_and_revocation_wins() {
        let mut s = Service::new("pw");
        let rt = field(&password(&mut s, "bob@contoso.test").1, "refresh_token").unwrap();
        let refresh = |s: &mut Service, rt: &str| {
            body(&s.handle(
                "POST",
                "/contoso.test/oauth2/v2.0/token",
                &format!("grant_type=refresh_token&client_id=app-public&refresh_token={rt}"),
            ))
        };
        let (st, b) = refresh(&mut s, &rt);
        assert_eq!(st, 200, "{b}");
        let rt2 = field(&b, "refresh_token").unwrap();
        assert_ne!(rt, rt2);
        assert_eq!(
            refresh(&mut s, &rt).0,
            200,
            "old token still works by default"
        );
        s.handle(
            "POST",
            "/_test/set?strict_rotation=1&user=bob@contoso.test",
            "",
        );
        assert!(refresh(&mut s, &rt).1.contains("AADSTS70000"));
        s.handle("POST", "/_test/revoke?user=bob@contoso.test", "");
        let (st, b) = refresh(&mut s, &rt2);
        assert_eq!(st, 400);
        assert!(
            b.contains("\"error\":\"invalid_grant\"") && b.contains("AADSTS50173"),
            "{b}"
        );
        assert!(refresh(&mut s, "garbage").1.contains("AADSTS9002313"));
    }

    #[test]
    fn directory_errors() {
        let mut s = Service::new("pw");
        let (st, b) = password(&mut s, "mfa-x@contoso.test");
        assert_eq!(st, 400);
        assert!(b.contains("\"error_codes\":[50076]"), "{b}");
        let b = body(&s.handle("POST", "/fabrikam/oauth2/v2.0/token", &format!("grant_type=password&client_id=app-public&username=a@contoso.test&password=pw&scope={IMAP}"))).1;
        assert!(b.contains("AADSTS90002"), "{b}");
        let (st, b) = body(&s.handle("POST", "/contoso-tenant/oauth2/v2.0/token", &format!("grant_type=password&client_id=app-nopublic&username=a@contoso.test&password=pw&scope={IMAP}")));
        assert_eq!(st, 401);
        assert!(
            b.contains("\"error\":\"invalid_client\"") && b.contains("AADSTS7000218"),
            "{b}"
        );
        let b = body(&s.handle("POST", "/contoso-tenant/oauth2/v2.0/token", &format!("grant_type=password&client_id=nobody&username=a@contoso.test&password=pw&scope={IMAP}"))).1;
        assert!(b.contains("AADSTS700016"), "{b}");
        let b = body(&s.handle("POST", "/contoso-tenant/oauth2/v2.0/token", "grant_type=password&client_id=app-public&username=a@contoso.test&password=pw&scope=User.Read")).1;
        assert!(
            b.contains("\"error\":\"invalid_scope\"") && b.contains("AADSTS70011"),
            "{b}"
        );
    }

    #[test]
    fn client_credentials() {
        let mut s = Service::new("pw");
        let cc = |s: &mut Service, secret: &str| {
            body(&s.handle("POST", "/contoso-tenant/oauth2/v2.0/token", &format!("grant_type=client_credentials&client_id=app-confidential&client_secret={secret}&scope=https%3A%2F%2Foutlook.office365.com%2F.default")))
        };
        let (st, b) = cc(&mut s, "s3cret-app");
        assert_eq!(st, 200, "{b}");
        assert!(field(&b, "refresh_token").is_none());
        let at = field(&b, "access_token").unwrap();
        assert!(introspect(&mut s, &at).contains("\"username\":\"app-confidential\""));
        let (st, b) = cc(&mut s, "wrong");
        assert_eq!(st, 401);
        assert!(b.contains("AADSTS7000215"), "{b}");
    }

    #[test]
    fn device_code_flow() {
        let mut s = Service::new("pw");
        s.handle("POST", "/_test/set?device_interval=0", "");
        let b = body(&s.handle(
            "POST",
            "/contoso-tenant/oauth2/v2.0/devicecode",
            &format!("client_id=app-public&scope={IMAP}"),
        ))
        .1;
        let dc = field(&b, "device_code").unwrap();
        let uc = field(&b, "user_code").unwrap();
        assert!(field(&b, "message").unwrap().contains(&uc));
        let poll = |s: &mut Service| {
            body(&s.handle("POST", "/contoso-tenant/oauth2/v2.0/token", &format!("grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id=app-public&device_code={dc}")))
        };
        assert!(poll(&mut s)
            .1
            .contains("\"error\":\"authorization_pending\""));
        let r = body(&s.handle(
            "POST",
            &format!("/_test/approve_device?user_code={uc}&user=mfa-c@contoso.test"),
            "",
        ));
        assert_eq!(r.0, 200, "{}", r.1);
        let (st, b) = poll(&mut s);
        assert_eq!(st, 200, "{b}");
        assert!(poll(&mut s).1.contains("AADSTS70000"), "redeemed once");
    }

    #[test]
    fn device_code_slow_down_and_expiry() {
        let mut s = Service::new("pw");
        s.handle("POST", "/_test/set?device_interval=60&device_expires=0", "");
        let b = body(&s.handle(
            "POST",
            "/contoso-tenant/oauth2/v2.0/devicecode",
            &format!("client_id=app-public&scope={IMAP}"),
        ))
        .1;
        let dc = field(&b, "device_code").unwrap();
        let b = body(&s.handle("POST", "/contoso-tenant/oauth2/v2.0/token", &format!("grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id=app-public&device_code={dc}"))).1;
        assert!(b.contains("\"error\":\"expired_token\""), "{b}");
        s.handle("POST", "/_test/set?device_expires=900", "");
        let b = body(&s.handle(
            "POST",
            "/contoso-tenant/oauth2/v2.0/devicecode",
            &format!("client_id=app-public&scope={IMAP}"),
        ))
        .1;
        let dc = field(&b, "device_code").unwrap();
        let poll = |s: &mut Service| {
            body(&s.handle("POST", "/contoso-tenant/oauth2/v2.0/token", &format!("grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id=app-public&device_code={dc}"))).1
        };
        assert!(poll(&mut s).contains("authorization_pending"));
        assert!(poll(&mut s).contains("\"error\":\"slow_down\""));
        assert!(body(&s.handle("POST", "/_test/stats", ""))
            .1
            .contains("\"slow_down\":1"));
    }

    #[test]
    fn a_changed_password_refuses_the_old_one_and_revokes_refresh_tokens() {
        let mut s = Service::new("pw");
        let (status, first) = password(&mut s, "carol@contoso.test");
        assert_eq!(status, 200, "{first}");
        let refresh = field(&first, "refresh_token").unwrap();
        s.handle(
            "POST",
            "/_test/set_password?user=carol@contoso.test&password=new-pw",
            "",
        );
        assert_eq!(password(&mut s, "carol@contoso.test").0, 400);
        let (status, answer) = body(&s.handle(
            "POST",
            "/contoso-tenant/oauth2/v2.0/token",
            &format!(
                "grant_type=refresh_token&client_id=app-public&refresh_token={refresh}&scope={IMAP}"
            ),
        ));
        assert_eq!(status, 400);
        assert!(answer.contains("50173"), "{answer}");
        let (status, _) = body(&s.handle(
            "POST",
            "/contoso-tenant/oauth2/v2.0/token",
            &format!(
                "grant_type=password&client_id=app-public&username=carol@contoso.test&password=new-pw&scope={IMAP}"
            ),
        ));
        assert_eq!(status, 200);
        // Other users keep the directory's password.
        assert_eq!(password(&mut s, "dave@contoso.test").0, 200);
        s.handle("POST", "/_test/reset?user=carol@contoso.test", "");
        assert_eq!(password(&mut s, "carol@contoso.test").0, 200);
    }

    #[test]
    fn fault_injection_is_scoped() {
        let mut s = Service::new("pw");
        s.handle(
            "POST",
            "/_test/fail_next?code=50173&count=2&user=a@contoso.test",
            "",
        );
        assert!(password(&mut s, "b@contoso.test").0 == 200);
        assert!(password(&mut s, "a@contoso.test").1.contains("AADSTS50173"));
        assert!(password(&mut s, "a@contoso.test").1.contains("AADSTS50173"));
        assert_eq!(password(&mut s, "a@contoso.test").0, 200);
        s.handle("POST", "/_test/mode?m=down&user=a@contoso.test", "");
        assert!(matches!(s.handle("POST", "/contoso-tenant/oauth2/v2.0/token", &format!("grant_type=password&client_id=app-public&username=a@contoso.test&password=pw&scope={IMAP}")), Reply::Close));
        assert_eq!(password(&mut s, "b@contoso.test").0, 200);
        let st = body(&s.handle("POST", "/_test/stats?user=a@contoso.test", "")).1;
        assert!(st.contains("\"token_requests\":4,\"password\":4"), "{st}");
        assert_eq!(
            body(&s.handle("POST", "/_test/fail_next?code=1", "")).0,
            400
        );
    }

    #[test]
    fn graph_tokens_carry_audience_scopes_and_roles() {
        let mut s = Service::new("pw");
        let (st, b) = body(&s.handle(
            "POST",
            "/contoso-tenant/oauth2/v2.0/token",
            "grant_type=password&client_id=app-public&username=d@contoso.test&password=pw&scope=https%3A%2F%2Fgraph.microsoft.com%2FMail.ReadWrite.Shared%20offline_access",
        ));
        assert_eq!(st, 200, "{b}");
        assert!(field(&b, "refresh_token").is_some());
        let at = field(&b, "access_token").unwrap();
        // A Graph token opens no IMAP mailbox.
        assert_eq!(introspect(&mut s, &at), "{\"active\":false}");
        let c = body(&s.handle("POST", "/introspect/claims", &format!("token={at}"))).1;
        assert!(c.contains("\"aud\":\"https://graph.microsoft.com\""), "{c}");
        assert!(
            c.contains("\"idtyp\":\"user\"") && c.contains("\"scp\":\"Mail.ReadWrite.Shared\""),
            "{c}"
        );
        let cc = |s: &mut Service| {
            body(&s.handle("POST", "/contoso-tenant/oauth2/v2.0/token", "grant_type=client_credentials&client_id=app-confidential&client_secret=s3cret-app&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"))
        };
        let at = field(&cc(&mut s).1, "access_token").unwrap();
        let c = body(&s.handle("POST", "/introspect/claims", &format!("token={at}"))).1;
        assert!(
            c.contains("\"roles\":[\"Mail.ReadWrite\"]") && c.contains("\"idtyp\":\"app\""),
            "{c}"
        );
        s.handle(
            "POST",
            "/_test/graph_roles?client_id=app-confidential&roles=",
            "",
        );
        let at = field(&cc(&mut s).1, "access_token").unwrap();
        let c = body(&s.handle("POST", "/introspect/claims", &format!("token={at}"))).1;
        assert!(c.contains("\"roles\":[]"), "{c}");
        s.handle("POST", "/_test/expire_access_tokens", "");
        let c = body(&s.handle("POST", "/introspect/claims", &format!("token={at}"))).1;
        assert_eq!(c, "{\"active\":false}");
    }
}
