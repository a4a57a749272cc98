//! Where a request came from, as the audit trail and the rate limits see it. (Audit events
//! are made by `Shared::audit_record` and written in the transaction of what they record.)

/// Where a request came from, as the HTTP layer saw it.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// The client's address, as recorded in the audit trail.
    pub ip: Option<String>,
    /// What rate limits and account protection count the client by: the address, or for
    /// IPv6 its network (see [`source_key`](crate::ratelimit::source_key)).
    pub source: Option<String>,
    pub user_agent: Option<String>,
}

impl RequestMeta {
    /// A request with no address (the CLI); bounds what is stored of a user agent.
    pub fn new(ip: Option<String>, user_agent: Option<&str>) -> Self {
        let user_agent =
            user_agent.map(|ua| ua.chars().filter(|c| !c.is_control()).take(512).collect());
        Self {
            source: ip.clone(),
            ip,
            user_agent,
        }
    }

    /// A request from `ip`, counted by its source key.
    pub fn from_client(ip: std::net::IpAddr, ipv6_prefix: u8, user_agent: Option<&str>) -> Self {
        let mut meta = Self::new(Some(ip.to_string()), user_agent);
        meta.source = Some(crate::ratelimit::source_key(ip, ipv6_prefix));
        meta
    }
}
