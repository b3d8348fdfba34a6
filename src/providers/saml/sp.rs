//! The SAML 2.0 service provider itself (feature `saml`): the AuthnRequest for the
//! HTTP-Redirect binding, the checks on a posted `SAMLResponse`, and the LogoutRequest.
//! samael (over libxml2 and xmlsec1) verifies the signatures; this module decides what is
//! required and reads the attributes from the verified assertion only.
//!
//! Directus (`api/src/auth/drivers/saml.ts`, samlify) accepts unsolicited responses, has no
//! replay check and checks neither audience nor recipient; gatehouse requires all of them
//! (docs/compatibility.md). The one-time use of an assertion id is recorded by the caller,
//! in the database, so a replay fails on every node.

use std::collections::BTreeMap;
use std::io::Write;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use samael::crypto::AllowedSignatureAlgorithm;
use samael::metadata::{EntityDescriptor, HTTP_POST_BINDING, HTTP_REDIRECT_BINDING};
use samael::schema::{Assertion, Issuer, NameIdPolicy};
use samael::service_provider::ServiceProvider;

use super::SamlConfig;

/// Largest `SAMLResponse` form field taken, base64 as posted (a signed response with a few
/// attributes is 5–15 KB; IdPs that embed certificate chains reach ~60 KB).
pub const MAX_SAML_RESPONSE: usize = 256 * 1024;
/// Largest attribute value kept; `directus_users` columns are at most 255 characters.
pub const MAX_ATTRIBUTE_VALUE: usize = 255;
/// Largest number of attributes and of values per attribute read from an assertion.
const MAX_ATTRIBUTES: usize = 100;
const MAX_VALUES: usize = 20;
/// Clock skew allowed on `NotBefore` / `NotOnOrAfter`.
const CLOCK_SKEW_SECS: i64 = 60;
/// How old a response's `IssueInstant` may be when it arrives.
const MAX_ISSUE_DELAY_SECS: i64 = 180;

const ASSERTION_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const PROTOCOL_NS: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";

/// Why a provider could not be built from its metadata (a start-up error).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MetadataError(pub String);

/// Why a posted response was refused. The text is for the log only.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    /// Malformed, unsigned, badly signed, for someone else, too old, unsolicited: Directus
    /// (samlify) throws a plain error for each, which the ACS answers as `UNKNOWN_EXCEPTION`.
    #[error("{0}")]
    Protocol(String),
    /// A valid assertion without the identifier attribute (Directus: INVALID_CREDENTIALS).
    #[error("the assertion has no `{0}` attribute (AUTH_<NAME>_IDENTIFIER_KEY)")]
    NoIdentifier(String),
}

fn protocol(reason: impl Into<String>) -> Rejected {
    Rejected::Protocol(reason.into())
}

/// What a verified assertion says, read from the signed content only.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The assertion's `ID`, for the one-time-use record.
    pub assertion_id: String,
    /// The IdP's entity id (with the assertion id, the replay key).
    pub issuer: String,
    /// Attribute name → values, as samlify's `extract.attributes`.
    pub attributes: BTreeMap<String, Vec<String>>,
    /// The subject's `NameID`, for a later LogoutRequest.
    pub name_id: Option<String>,
}

impl Verified {
    /// The first value of an attribute.
    pub fn first(&self, key: &str) -> Option<&str> {
        self.attributes
            .get(key)
            .and_then(|v| v.first())
            .map(String::as_str)
    }
}

/// A configured SAML service provider and the IdP it trusts.
pub struct Sp {
    /// `AUTH_<NAME>_SP_metadata`, served as is by `GET .../metadata` (samlify does the same).
    pub sp_metadata: String,
    pub entity_id: String,
    pub acs_url: String,
    /// The IdP's SSO endpoint for the HTTP-Redirect binding.
    pub sso_url: String,
    /// The IdP's single logout endpoint for the HTTP-Redirect binding, when it has one.
    pub slo_url: Option<String>,
    name_id_format: Option<String>,
    samael: ServiceProvider,
}

impl std::fmt::Debug for Sp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sp")
            .field("entity_id", &self.entity_id)
            .field("acs_url", &self.acs_url)
            .field("sso_url", &self.sso_url)
            .finish_non_exhaustive()
    }
}

/// SECURITY: SAML needs no DTD; refusing one up front keeps entity expansion and external
/// entities out of the XML parsers entirely. NUL bytes would be cut off by libxml's C strings.
fn screen_xml(xml: &str) -> Result<(), String> {
    if xml.contains('\0') {
        return Err("the XML contains a NUL byte".into());
    }
    if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
        return Err("the XML has a DTD, which SAML never needs".into());
    }
    Ok(())
}

fn parse_metadata(var: &str, xml: &str) -> Result<EntityDescriptor, MetadataError> {
    screen_xml(xml).map_err(|e| MetadataError(format!("{var}: {e}")))?;
    xml.parse::<EntityDescriptor>().map_err(|e| {
        MetadataError(format!(
            "{var} is not SAML metadata (an <EntityDescriptor> XML document): {e}"
        ))
    })
}

impl Sp {
    /// Reads both metadata documents. Everything the checks rely on must be there: the SP's
    /// entity id and HTTP-POST ACS, the IdP's entity id, HTTP-Redirect SSO endpoint and at
    /// least one signing certificate (signatures are always verified).
    pub fn new(name: &str, c: &SamlConfig) -> Result<Sp, MetadataError> {
        let var = |s: &str| format!("AUTH_{}_{s}", name.to_ascii_uppercase());
        let sp_var = var("SP_metadata");
        let idp_var = var("IDP_metadata");
        let sp = parse_metadata(&sp_var, &c.sp_metadata)?;
        let idp = parse_metadata(&idp_var, &c.idp_metadata)?;
        let entity_id = sp
            .entity_id
            .clone()
            .filter(|e| !e.is_empty())
            .ok_or_else(|| MetadataError(format!("{sp_var} has no entityID")))?;
        let sp_sso = sp
            .sp_sso_descriptors
            .as_ref()
            .and_then(|d| d.first())
            .ok_or_else(|| MetadataError(format!("{sp_var} has no <SPSSODescriptor>")))?;
        if sp_sso.authn_requests_signed == Some(true) {
            return Err(MetadataError(format!(
                "{sp_var} sets AuthnRequestsSigned=\"true\": gatehouse sends unsigned AuthnRequests; set it to false (the IdP must accept unsigned requests)"
            )));
        }
        let acs_url = sp_sso
            .assertion_consumer_services
            .iter()
            .find(|a| a.binding == HTTP_POST_BINDING)
            .map(|a| a.location.clone())
            .ok_or_else(|| {
                MetadataError(format!(
                    "{sp_var} has no AssertionConsumerService with the HTTP-POST binding: add one at <PUBLIC_URL>/auth/login/{name}/acs"
                ))
            })?;
        let name_id_format = sp_sso
            .name_id_formats
            .as_ref()
            .and_then(|f| f.first())
            .cloned();
        if idp.entity_id.as_deref().is_none_or(str::is_empty) {
            return Err(MetadataError(format!("{idp_var} has no entityID")));
        }
        let idp_sso = idp
            .idp_sso_descriptors
            .as_ref()
            .and_then(|d| d.first())
            .ok_or_else(|| MetadataError(format!("{idp_var} has no <IDPSSODescriptor>")))?;
        let sso_url = idp_sso
            .single_sign_on_services
            .iter()
            .find(|s| s.binding == HTTP_REDIRECT_BINDING)
            .map(|s| s.location.clone())
            .ok_or_else(|| {
                MetadataError(format!(
                    "{idp_var} has no SingleSignOnService with the HTTP-Redirect binding"
                ))
            })?;
        let slo_url = idp_sso
            .single_logout_services
            .iter()
            .find(|s| s.binding == HTTP_REDIRECT_BINDING)
            .map(|s| s.location.clone());
        for (what, u) in [("SSO", Some(&sso_url)), ("SLO", slo_url.as_ref())] {
            if let Some(u) = u {
                if url::Url::parse(u).is_err() {
                    return Err(MetadataError(format!(
                        "{idp_var}: the {what} location {u:?} is not an absolute URL"
                    )));
                }
            }
        }
        let samael = samael::service_provider::ServiceProviderBuilder::default()
            .entity_id(Some(entity_id.clone()))
            .acs_url(Some(acs_url.clone()))
            .idp_metadata(idp)
            .allow_idp_initiated(false)
            .max_clock_skew(chrono::Duration::seconds(CLOCK_SKEW_SECS))
            .max_issue_delay(chrono::Duration::seconds(MAX_ISSUE_DELAY_SECS))
            // SECURITY: no SHA-1 signatures or digests (algorithm substitution).
            .allowed_signature_algorithms(Some(vec![
                AllowedSignatureAlgorithm::RsaSha256,
                AllowedSignatureAlgorithm::RsaSha384,
                AllowedSignatureAlgorithm::RsaSha512,
                AllowedSignatureAlgorithm::EcdsaSha256,
                AllowedSignatureAlgorithm::EcdsaSha384,
                AllowedSignatureAlgorithm::EcdsaSha512,
            ]))
            .build()
            .map_err(|e| MetadataError(format!("SAML provider `{name}`: {e}")))?;
        // SECURITY: samael skips signature verification when the IdP metadata has no signing
        // certificate; gatehouse refuses to start instead.
        match samael.idp_signing_certs() {
            Ok(Some(certs))
                if certs
                    .iter()
                    .any(|c| openssl::x509::X509::from_der(c.der_data()).is_ok()) => {}
            Ok(_) => {
                return Err(MetadataError(format!(
                    "{idp_var} has no signing certificate (<KeyDescriptor use=\"signing\"> with an X509Certificate): responses could not be verified"
                )))
            }
            Err(e) => return Err(MetadataError(format!("{idp_var}: {e}"))),
        }
        Ok(Sp {
            sp_metadata: c.sp_metadata.clone(),
            entity_id,
            acs_url,
            sso_url,
            slo_url,
            name_id_format,
            samael,
        })
    }

    /// The IdP's entity id.
    pub fn idp_entity_id(&self) -> &str {
        self.samael.idp_metadata.entity_id.as_deref().unwrap_or("")
    }

    /// An AuthnRequest for the HTTP-Redirect binding: its id (kept by the caller in a signed
    /// cookie for the `InResponseTo` check) and the IdP URL with `SAMLRequest` (and
    /// `RelayState` when given), as samlify's `createLoginRequest(idp, 'redirect')`.
    pub fn login_request(
        &self,
        relay_state: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(String, url::Url), String> {
        let id = new_id();
        let request = samael::schema::AuthnRequest {
            id: id.clone(),
            version: "2.0".into(),
            issue_instant: now,
            destination: Some(self.sso_url.clone()),
            assertion_consumer_service_url: Some(self.acs_url.clone()),
            protocol_binding: Some(HTTP_POST_BINDING.into()),
            issuer: Some(Issuer {
                value: Some(self.entity_id.clone()),
                ..Issuer::default()
            }),
            name_id_policy: self.name_id_format.as_ref().map(|f| NameIdPolicy {
                allow_create: Some(true),
                format: Some(f.clone()),
                ..NameIdPolicy::default()
            }),
            ..samael::schema::AuthnRequest::default()
        };
        let url = request
            .redirect(relay_state.unwrap_or(""))
            .map_err(|e| format!("cannot build the AuthnRequest: {e}"))?
            .ok_or("the AuthnRequest has no destination")?;
        Ok((id, url))
    }

    /// A LogoutRequest for the HTTP-Redirect binding (samlify's `createLogoutRequest(idp,
    /// 'redirect', user)`); `None` when the IdP metadata names no redirect SLO endpoint.
    pub fn logout_request(
        &self,
        name_id: Option<&str>,
        session_index: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<url::Url>, String> {
        let Some(slo) = &self.slo_url else {
            return Ok(None);
        };
        let xml = logout_request_xml(
            &new_id(),
            now,
            slo,
            &self.entity_id,
            name_id.unwrap_or(""),
            session_index,
        );
        let mut url = url::Url::parse(slo).map_err(|e| format!("SLO location: {e}"))?;
        url.query_pairs_mut()
            .append_pair("SAMLRequest", &deflate_base64(xml.as_bytes())?);
        Ok(Some(url))
    }

    /// Checks a posted `SAMLResponse` (base64) that answers the AuthnRequest `request_id`
    /// (`None`: no login was started in this browser, so the response is unsolicited).
    pub fn verify(
        &self,
        saml_response: &str,
        request_id: Option<&str>,
    ) -> Result<Verified, Rejected> {
        if saml_response.len() > MAX_SAML_RESPONSE {
            return Err(protocol("the SAMLResponse is too large"));
        }
        let compact: String = saml_response
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let bytes = B64
            .decode(compact.as_bytes())
            .map_err(|_| protocol("the SAMLResponse is not base64"))?;
        let xml =
            String::from_utf8(bytes).map_err(|_| protocol("the SAMLResponse is not UTF-8"))?;
        screen_xml(&xml).map_err(protocol)?;
        let shape = outline(&xml).map_err(protocol)?;
        // SECURITY: exactly one plain assertion in the whole message. The signature checks
        // below only keep what is signed, but a second assertion (signed elsewhere, or not at
        // all) has no business here, and refusing it is simpler than reasoning about it.
        if shape.encrypted_assertions > 0 {
            return Err(protocol(
                "encrypted assertions are not supported: turn assertion encryption off at the IdP",
            ));
        }
        if shape.assertion_ids.len() != 1 {
            return Err(protocol(format!(
                "the response carries {} assertions; exactly one is accepted",
                shape.assertion_ids.len()
            )));
        }
        // These Response attributes are only signed when the Response is; samael checks them
        // then. They are checked here in every case.
        if let Some(d) = &shape.destination {
            if d != &self.acs_url {
                return Err(protocol(format!(
                    "the response's Destination {d:?} is not this ACS {:?}",
                    self.acs_url
                )));
            }
        }
        if shape.status.as_deref() != Some(STATUS_SUCCESS) {
            return Err(protocol(format!(
                "the IdP answered status {:?}",
                shape.status.as_deref().unwrap_or("(none)")
            )));
        }
        let Some(request_id) = request_id else {
            return Err(protocol(
                "unsolicited response: no login was started from this browser (or it expired)",
            ));
        };
        if let Some(irt) = &shape.in_response_to {
            if irt != request_id {
                return Err(protocol(
                    "the response's InResponseTo is not the request this browser started",
                ));
            }
        }
        let ids = [request_id];
        let assertion: Assertion = self
            .samael
            .parse_xml_response(&xml, Some(&ids))
            .map_err(|e| protocol(format!("samael refused the response: {e}")))?;
        // The verified assertion must be the one in the message (it is, by the reduction; a
        // cheap cross-check against a parser difference).
        if shape.assertion_ids.first() != Some(&assertion.id) {
            return Err(protocol(
                "the verified assertion is not the response's assertion",
            ));
        }
        // samael only checks an AudienceRestriction that is present; one is required here.
        let audiences: Vec<&str> = assertion
            .conditions
            .iter()
            .flat_map(|c| c.audience_restrictions.iter().flatten())
            .flat_map(|r| r.audience.iter().map(String::as_str))
            .collect();
        if !audiences.contains(&self.entity_id.as_str()) {
            return Err(protocol(format!(
                "the assertion is not for this SP (audience {audiences:?}, entity id {:?})",
                self.entity_id
            )));
        }
        // NotBefore / NotOnOrAfter of the conditions and of the bearer SubjectConfirmation
        // (which must exist, with a NotOnOrAfter and this ACS as Recipient) are samael's checks.
        let mut attributes: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for attr in assertion
            .attribute_statements
            .iter()
            .flatten()
            .flat_map(|s| s.attributes.iter())
            .take(MAX_ATTRIBUTES)
        {
            let Some(name) = attr.name.as_ref().filter(|n| n.len() <= 1024) else {
                continue;
            };
            let values = attr
                .values
                .iter()
                .take(MAX_VALUES)
                .filter_map(|v| v.value.as_ref())
                .map(|v| v.trim().to_string())
                .collect::<Vec<_>>();
            attributes.entry(name.clone()).or_default().extend(values);
        }
        let name_id = assertion
            .subject
            .as_ref()
            .and_then(|s| s.name_id.as_ref())
            .map(|n| n.value.clone());
        Ok(Verified {
            assertion_id: assertion.id,
            issuer: assertion.issuer.value.unwrap_or_default(),
            attributes,
            name_id,
        })
    }
}

/// A fresh message id: an NCName (`_` + 32 hex digits, 128 random bits).
fn new_id() -> String {
    format!("_{}", uuid::Uuid::new_v4().simple())
}

fn deflate_base64(bytes: &[u8]) -> Result<String, String> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).map_err(|e| e.to_string())?;
    Ok(B64.encode(enc.finish().map_err(|e| e.to_string())?))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn logout_request_xml(
    id: &str,
    now: DateTime<Utc>,
    destination: &str,
    issuer: &str,
    name_id: &str,
    session_index: Option<&str>,
) -> String {
    let session = session_index
        .map(|s| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", xml_escape(s)))
        .unwrap_or_default();
    format!(
        r#"<samlp:LogoutRequest xmlns:samlp="{PROTOCOL_NS}" xmlns:saml="{ASSERTION_NS}" ID="{id}" Version="2.0" IssueInstant="{}" Destination="{}"><saml:Issuer>{}</saml:Issuer><saml:NameID>{}</saml:NameID>{session}</samlp:LogoutRequest>"#,
        now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        xml_escape(destination),
        xml_escape(issuer),
        xml_escape(name_id),
    )
}

/// The parts of the raw message checked before (and beside) the signature checks.
#[derive(Debug, Default)]
struct Outline {
    destination: Option<String>,
    in_response_to: Option<String>,
    status: Option<String>,
    /// `ID`s of every `<saml:Assertion>`, wherever it sits.
    assertion_ids: Vec<String>,
    encrypted_assertions: usize,
}

/// One streaming pass over the message with namespaces resolved: the root must be a
/// `samlp:Response`; every assertion anywhere is counted.
fn outline(xml: &str) -> Result<Outline, String> {
    use quick_xml::events::Event;
    use quick_xml::name::ResolveResult;
    let mut reader = quick_xml::NsReader::from_str(xml);
    let mut out = Outline::default();
    let mut depth = 0usize;
    let mut in_status = false;
    loop {
        let (ns, ev) = reader
            .read_resolved_event()
            .map_err(|e| format!("the response is not well-formed XML: {e}"))?;
        let (start, empty) = match &ev {
            Event::Start(s) => (Some(s.clone()), false),
            Event::Empty(s) => (Some(s.clone()), true),
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth <= 1 {
                    in_status = false;
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let Some(start) = start else { continue };
        let ns = match ns {
            ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
            _ => String::new(),
        };
        let local = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
        let attr = |name: &str| -> Option<String> {
            start.try_get_attribute(name).ok().flatten().and_then(|a| {
                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .ok()
                    .map(|v| v.into_owned())
            })
        };
        if depth == 0 {
            if ns != PROTOCOL_NS || local != "Response" {
                return Err(format!("the message is a {local}, not a samlp:Response"));
            }
            out.destination = attr("Destination");
            out.in_response_to = attr("InResponseTo");
        }
        if depth == 1 && ns == PROTOCOL_NS && local == "Status" {
            in_status = true;
        }
        if in_status && depth == 2 && ns == PROTOCOL_NS && local == "StatusCode" {
            out.status = attr("Value");
        }
        if ns == ASSERTION_NS && local == "Assertion" {
            out.assertion_ids.push(attr("ID").unwrap_or_default());
        }
        if ns == ASSERTION_NS && local == "EncryptedAssertion" {
            out.encrypted_assertions += 1;
        }
        if depth > 64 {
            return Err("the response is nested too deeply".into());
        }
        if !empty {
            depth += 1;
        } else if depth == 0 {
            // An empty root: nothing more to read.
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_outline_counts_every_assertion_and_reads_the_status() {
        let xml = format!(
            r#"<samlp:Response xmlns:samlp="{PROTOCOL_NS}" xmlns:saml="{ASSERTION_NS}" ID="r" Destination="http://sp/acs" InResponseTo="_1"><samlp:Status><samlp:StatusCode Value="{STATUS_SUCCESS}"/></samlp:Status><saml:Assertion ID="a1"/><x><saml:Assertion ID="a2"></saml:Assertion></x></samlp:Response>"#
        );
        let o = outline(&xml).unwrap();
        assert_eq!(o.destination.as_deref(), Some("http://sp/acs"));
        assert_eq!(o.in_response_to.as_deref(), Some("_1"));
        assert_eq!(o.status.as_deref(), Some(STATUS_SUCCESS));
        assert_eq!(o.assertion_ids, ["a1", "a2"]);
        assert!(outline(r#"<Response xmlns="urn:x"/>"#).is_err());
        assert!(outline("<samlp:Response").is_err());
    }

    #[test]
    fn dtds_and_nul_bytes_are_refused() {
        assert!(screen_xml("<!DOCTYPE x [<!ENTITY a 'b'>]><x/>").is_err());
        assert!(screen_xml("<x>\0</x>").is_err());
        assert!(screen_xml("<x/>").is_ok());
    }

    #[test]
    fn logout_requests_escape_what_they_carry() {
        let xml = logout_request_xml(
            "_1",
            DateTime::UNIX_EPOCH,
            "http://idp/slo",
            "http://sp",
            "a<b>&\"",
            Some("s1"),
        );
        assert!(xml.contains("<saml:NameID>a&lt;b&gt;&amp;&quot;</saml:NameID>"));
        assert!(xml.contains("<samlp:SessionIndex>s1</samlp:SessionIndex>"));
        assert!(xml.contains(r#"IssueInstant="1970-01-01T00:00:00Z""#));
    }

    #[test]
    fn ids_are_ncnames_and_unique() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert!(a.starts_with('_') && a.len() == 33);
    }
}
