//! A test IdP: metadata for both sides, and SAML responses built here and signed with the
//! `xmlsec1` command (the tool the testbed verifies real IdPs' signatures with), so the
//! signatures the server checks come from a signer it does not share code with.

use std::path::PathBuf;
use std::process::Command;

use base64::Engine as _;
use chrono::{DateTime, Duration, SecondsFormat, Utc};

pub const SP_ENTITY: &str = "http://sp.test/auth/login/corp";
pub const ACS: &str = "http://sp.test/auth/login/corp/acs";
pub const IDP_ENTITY: &str = "http://idp.test/metadata";
pub const IDP_SSO: &str = "http://idp.test/sso";
pub const IDP_SLO: &str = "http://idp.test/slo";

pub const ID_KEY: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier";
pub const EMAIL_KEY: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress";
pub const GIVEN_KEY: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname";
pub const SURNAME_KEY: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/saml")
        .join(name)
}

/// The body of a PEM certificate: base64 DER on one line.
pub fn cert_b64(which: &str) -> String {
    let pem = std::fs::read_to_string(fixture(&format!("{which}-cert.pem"))).expect("fixture");
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

pub fn sp_metadata() -> String {
    format!(
        r#"<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{SP_ENTITY}">
  <md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
    <md:AssertionConsumerService index="0" Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{ACS}"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>"#
    )
}

pub fn idp_metadata_with(cert: &str, slo: bool) -> String {
    let slo = if slo {
        format!(
            r#"<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{IDP_SLO}"/>"#
        )
    } else {
        String::new()
    };
    format!(
        r#"<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{IDP_ENTITY}">
  <md:IDPSSODescriptor WantAuthnRequestsSigned="false" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    {slo}
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{IDP_SSO}"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"#
    )
}

pub fn idp_metadata() -> String {
    idp_metadata_with(&cert_b64("idp"), true)
}

/// The server variables for provider `corp` with this IdP.
pub fn provider_vars() -> Vec<(&'static str, String)> {
    vec![
        ("AUTH_PROVIDERS", "corp".into()),
        ("AUTH_CORP_DRIVER", "saml".into()),
        ("AUTH_CORP_SP_metadata", sp_metadata()),
        ("AUTH_CORP_IDP_metadata", idp_metadata()),
        ("PUBLIC_URL", "http://sp.test".into()),
    ]
}

/// What goes into one response; `good(request_id)` is a response the server must accept.
#[derive(Clone)]
pub struct Spec {
    pub response_id: String,
    pub assertion_id: String,
    pub in_response_to: Option<String>,
    pub destination: String,
    pub recipient: String,
    pub audience: String,
    pub issuer: String,
    pub issue_instant: DateTime<Utc>,
    pub not_before: DateTime<Utc>,
    pub not_on_or_after: DateTime<Utc>,
    pub status: String,
    pub name_id: String,
    pub attributes: Vec<(String, String)>,
    pub sign_response: bool,
    pub sign_assertion: bool,
    /// `idp` or `attacker`.
    pub key: &'static str,
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

impl Spec {
    pub fn good(request_id: &str, user: &str) -> Spec {
        let now = Utc::now();
        Spec {
            response_id: unique("_r"),
            assertion_id: unique("_a"),
            in_response_to: Some(request_id.to_string()),
            destination: ACS.into(),
            recipient: ACS.into(),
            audience: SP_ENTITY.into(),
            issuer: IDP_ENTITY.into(),
            issue_instant: now,
            not_before: now - Duration::seconds(5),
            not_on_or_after: now + Duration::minutes(5),
            status: "urn:oasis:names:tc:SAML:2.0:status:Success".into(),
            name_id: format!("{user}@example.com"),
            attributes: vec![
                (ID_KEY.into(), user.to_string()),
                (EMAIL_KEY.into(), format!("{user}@example.com")),
                (GIVEN_KEY.into(), "Sam".into()),
                (SURNAME_KEY.into(), "Lee".into()),
            ],
            sign_response: true,
            sign_assertion: true,
            key: "idp",
        }
    }

    pub fn attribute(mut self, name: &str, value: &str) -> Spec {
        self.attributes.retain(|(n, _)| n != name);
        self.attributes.push((name.into(), value.into()));
        self
    }

    pub fn without(mut self, name: &str) -> Spec {
        self.attributes.retain(|(n, _)| n != name);
        self
    }

    /// The assertion element, with a signature template when it is to be signed.
    pub fn assertion_xml(&self) -> String {
        let t = |d: DateTime<Utc>| d.to_rfc3339_opts(SecondsFormat::Secs, true);
        let irt = self
            .in_response_to
            .as_ref()
            .map(|i| format!(r#" InResponseTo="{i}""#))
            .unwrap_or_default();
        let attrs: String = self
            .attributes
            .iter()
            .map(|(n, v)| {
                format!(
                    r#"<saml:Attribute Name="{n}"><saml:AttributeValue xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xs:string">{v}</saml:AttributeValue></saml:Attribute>"#
                )
            })
            .collect();
        let sig = if self.sign_assertion {
            signature_template(&self.assertion_id)
        } else {
            String::new()
        };
        format!(
            r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{ii}"><saml:Issuer>{issuer}</saml:Issuer>{sig}<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">{name_id}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="{nooa}" Recipient="{recipient}"{irt}/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{nb}" NotOnOrAfter="{nooa}"><saml:AudienceRestriction><saml:Audience>{aud}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="{ii}" SessionIndex="{id}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement>{attrs}</saml:AttributeStatement></saml:Assertion>"#,
            id = self.assertion_id,
            ii = t(self.issue_instant),
            issuer = self.issuer,
            name_id = self.name_id,
            nooa = t(self.not_on_or_after),
            nb = t(self.not_before),
            recipient = self.recipient,
            aud = self.audience,
        )
    }

    /// The unsigned document with the signature templates in place.
    pub fn template(&self, assertion: &str) -> String {
        let irt = self
            .in_response_to
            .as_ref()
            .map(|i| format!(r#" InResponseTo="{i}""#))
            .unwrap_or_default();
        let sig = if self.sign_response {
            signature_template(&self.response_id)
        } else {
            String::new()
        };
        format!(
            r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{ii}" Destination="{dest}"{irt}><saml:Issuer>{issuer}</saml:Issuer>{sig}<samlp:Status><samlp:StatusCode Value="{status}"/></samlp:Status>{assertion}</samlp:Response>"#,
            id = self.response_id,
            ii = self
                .issue_instant
                .to_rfc3339_opts(SecondsFormat::Secs, true),
            dest = self.destination,
            issuer = self.issuer,
            status = self.status,
        )
    }

    /// The signed response XML: the assertion is signed first, then the response around it.
    pub fn signed_xml(&self) -> String {
        let mut xml = self.template(&self.assertion_xml());
        if self.sign_assertion {
            xml = sign(&xml, self.key, "Assertion");
        }
        if self.sign_response {
            xml = sign(&xml, self.key, "Response");
        }
        xml
    }

    /// The `SAMLResponse` form value.
    pub fn encoded(&self) -> String {
        b64(&self.signed_xml())
    }
}

pub fn b64(xml: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(xml)
}

pub fn signature_template(id: &str) -> String {
    format!(
        r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data><ds:X509Certificate/></ds:X509Data></ds:KeyInfo></ds:Signature>"##
    )
}

/// Signs the signature template that is a direct child of the `element` (Response or
/// Assertion) with the `which` fixture key, through `xmlsec1 --sign`.
pub fn sign(xml: &str, which: &str, element: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.xml");
    std::fs::write(&input, xml).expect("write");
    let key = format!(
        "{},{}",
        fixture(&format!("{which}-key.pem")).display(),
        fixture(&format!("{which}-cert.pem")).display()
    );
    let out = Command::new("xmlsec1")
        .args(["--sign", "--privkey-pem", &key])
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:protocol:Response",
        ])
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
        ])
        .args([
            "--node-xpath",
            &format!(
                "/*[local-name()='Response']{}/*[local-name()='Signature']",
                if element == "Assertion" {
                    "/*[local-name()='Assertion']"
                } else {
                    ""
                }
            ),
        ])
        .arg(&input)
        .output()
        .expect("xmlsec1 runs (apt-get install xmlsec1)");
    assert!(
        out.status.success(),
        "xmlsec1 --sign failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}
