//! Who a token belongs to (Directus: `api/src/middleware/authenticate.ts`) and what that user may do
//! (`packages/utils/node/fetch-global-access/`, `packages/utils/node/fetch-roles-tree.ts`).

use std::net::IpAddr;

use uuid::Uuid;

use super::user::{Policy, Role, Status};
use super::Error;
use super::{uuid_of, Accountability, Auth, RequestMeta};
use crate::error::ApiError;
use crate::store::Principal;
use crate::store::ROLES;
use crate::tokens::is_directus_jwt;

/// Global flags from a user's policies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Access {
    pub admin: bool,
    pub app: bool,
    /// A policy on the user's direct role enforces TFA.
    pub enforce_tfa: bool,
}

/// Whether `ip` is in a policy's `ip_access` list (IPs or CIDR ranges, comma-separated).
/// An IPv4-mapped IPv6 address is read as the IPv4 address it carries; an entry that is
/// neither an address nor a CIDR range (a prefix that is not a number, or longer than the
/// address) matches nothing.
pub fn ip_allowed(list: &str, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .any(|entry| {
            if entry.contains('/') {
                entry
                    .parse::<ipnet::IpNet>()
                    .is_ok_and(|net| net.contains(&ip))
            } else {
                entry.parse::<IpAddr>().is_ok_and(|addr| addr == ip)
            }
        })
}

impl Auth {
    /// The role and its ancestors, nearest first; a cycle is a data error.
    pub async fn role_chain(&self, role: Option<Uuid>) -> Result<Vec<Uuid>, Error> {
        let mut chain = Vec::new();
        let mut next = role;
        while let Some(id) = next {
            if chain.contains(&id) || chain.len() > 64 {
                return Err(ApiError::internal(anyhow::anyhow!(
                    "directus_roles has a parent cycle at {id}"
                ))
                .into());
            }
            chain.push(id);
            next = self
                .store
                .items
                .item_get(&ROLES, &id.to_string().into())
                .await?
                .and_then(|r| Role::from_item(&r))
                .and_then(|r| r.parent);
        }
        Ok(chain)
    }

    /// admin/app flags OR-ed over the policies of the role tree and the user (Directus:
    /// `packages/utils/node/fetch-global-access/`); a policy limited to other IPs is skipped.
    pub async fn access(
        &self,
        user: Option<Uuid>,
        role: Option<Uuid>,
        ip: Option<IpAddr>,
    ) -> Result<Access, Error> {
        let roles = self.role_chain(role).await?;
        if roles.is_empty() && user.is_none() {
            return Ok(Access::default());
        }
        let mut access = Access::default();
        for (row, via) in self.store.access.policies_for(&roles, user).await?.iter() {
            let via = *via;
            let policy = Policy::from_item(row);
            // Directus's `enforce_tfa` query (`api/src/services/authentication.ts`) joins the
            // user's direct role to its policies without regard to `ip_access`.
            if via.is_some() && via == role && policy.enforce_tfa {
                access.enforce_tfa = true;
            }
            if let (Some(list), Some(ip)) = (&policy.ip_access, ip) {
                if !ip_allowed(list, ip) {
                    continue;
                }
            }
            access.admin |= policy.admin_access;
            access.app |= policy.app_access;
        }
        access.app |= access.admin;
        Ok(access)
    }

    /// Whether the caller has admin access. `authenticate` computed it from the user's current
    /// row and policies, not from the token's claims.
    pub async fn is_admin(&self, acc: &Accountability) -> Result<bool, Error> {
        Ok(acc.user.is_some() && acc.admin)
    }

    pub async fn require_admin(&self, acc: &Accountability) -> Result<(), Error> {
        if self.is_admin(acc).await? {
            Ok(())
        } else {
            Err(ApiError::Forbidden.into())
        }
    }

    /// Resolves a request's token (Directus: `api/src/middleware/authenticate.ts`,
    /// `api/src/utils/get-accountability-for-token.ts`). JWTs are verified with the clock;
    /// session JWTs must still have their row; other values are static tokens of active users.
    ///
    /// SECURITY: whatever the token, the user's *current* row decides: a user who was
    /// suspended, deleted or given another role since the token was issued is refused or gets
    /// the new role's access at once (within the per-node cache's TTL on other nodes). Directus
    /// trusts the role and flags in the JWT until it expires (docs/compatibility.md).
    pub async fn authenticate(
        &self,
        token: Option<&str>,
        meta: RequestMeta,
    ) -> Result<Accountability, Error> {
        let Some(token) = token else {
            return Ok(Accountability {
                meta,
                ..Default::default()
            });
        };
        // A NUL byte can be in no stored token (PostgreSQL would refuse the lookup itself).
        if token.contains('\0') || token == super::admin::MASK {
            return Err(ApiError::InvalidCredentials.into());
        }
        // A token that verifies is a Directus JWT; only one that does not needs the shape
        // check, which decides between 403 INVALID_TOKEN and the static-token lookup. (The
        // check decodes the whole token: once per request it was a measurable share of a
        // cached /users/me.)
        let verified = match self.tokens.verify(token, self.now()) {
            Ok(claims) => Some(claims),
            Err(e) if is_directus_jwt(token) => return Err(e.into()),
            Err(_) => None,
        };
        let (id, principal, session) = if let Some(claims) = verified {
            if let Some(session) = &claims.session {
                let row = self.store.sessions.session_get(session).await?;
                let ok = row.is_some_and(|s| {
                    s.user == Some(claims.id) && s.share.is_none() && s.expires >= self.now()
                });
                if !ok {
                    return Err(ApiError::InvalidCredentials.into());
                }
            }
            let principal = self.store.access.principal(claims.id).await?;
            (claims.id, principal, claims.session)
        } else {
            // Only active users' static tokens are found; the status is checked below anyway.
            let row = self
                .store
                .access
                .user_by_static_token(token)
                .await?
                .ok_or(ApiError::InvalidCredentials)?;
            let id = uuid_of(&row, "id").ok_or(ApiError::InvalidCredentials)?;
            (id, Some(Principal::of(&row)), None)
        };
        let Some(principal) = principal.filter(|p| Status::parse(&p.status) == Status::Active)
        else {
            return Err(ApiError::InvalidCredentials.into());
        };
        let access = self.access(Some(id), principal.role, meta.ip).await?;
        Ok(Accountability {
            user: Some(id),
            role: principal.role,
            email: principal.email,
            session,
            admin: access.admin,
            app: access.app,
            meta,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_lists_match_addresses_and_ranges() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(ip_allowed("10.0.0.0/8, 192.168.1.5", ip("10.1.2.3")));
        assert!(ip_allowed("10.0.0.0/8,192.168.1.5", ip("192.168.1.5")));
        assert!(!ip_allowed("10.0.0.0/8,192.168.1.5", ip("192.168.1.6")));
        assert!(ip_allowed("127.0.0.1", ip("::ffff:127.0.0.1")));
        assert!(ip_allowed("::1", ip("::1")));
        assert!(!ip_allowed("garbage", ip("127.0.0.1")));
        assert!(
            ip_allowed("10.9.9.9/8", ip("10.1.2.3")),
            "host bits are ignored"
        );
        assert!(ip_allowed("0.0.0.0/0", ip("203.0.113.7")));
        assert!(ip_allowed("2001:db8::/32", ip("2001:db8::1")));
        assert!(
            !ip_allowed("2001:db8::/32", ip("10.0.0.1")),
            "families differ"
        );
        assert!(!ip_allowed("10.0.0.1/33, 10.0.0.1/x", ip("10.0.0.1")));
    }
}
