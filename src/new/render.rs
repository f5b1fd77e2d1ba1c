//! The text `portcullis new` writes and prints: the YAML, the nginx
//! snippet (from the shipped examples, with the domain and addresses filled
//! in), what to register at the IdP, and the next commands.

use super::{Idp, Plan, SamlMetadata};
use crate::config::Config;

const NGINX_PROXY: &str = include_str!("../../config-examples/nginx-proxy.conf");
const NGINX_AUTH_REQUEST: &str = include_str!("../../config-examples/nginx-auth-request.conf");

fn q(s: &str) -> String {
    // JSON strings are YAML strings: no value can break the file.
    serde_json::Value::String(s.to_string()).to_string()
}

pub fn yaml(p: &Plan) -> String {
    let idp = match &p.idp {
        Idp::Oidc {
            issuer,
            client_id,
            secret_file,
        } => format!(
            "oidc:\n  issuer: {}\n  client_id: {}\n  # The secret, alone in this file (owner root, group portcullis, mode 0640).\n  client_secret_file: {}\n  scopes: [openid, email, profile]\n  # Where the groups are in the ID token (Keycloak: realm_access.roles).\n  # claims:\n  #   groups: groups\n",
            q(issuer),
            q(client_id),
            q(&secret_file.display().to_string())
        ),
        Idp::Saml(m) => {
            let src = match m {
                SamlMetadata::Url(u) => format!("  idp_metadata_url: {}\n", q(u)),
                SamlMetadata::File(f) => {
                    format!("  idp_metadata_file: {}\n", q(&f.display().to_string()))
                }
            };
            format!(
                "saml:\n{src}  # The SP key pair was made by `portcullis new`; its metadata is in\n  # {name}.sp-metadata.xml and at https://{domain}/.portcullis/saml/metadata\n",
                name = p.name,
                domain = p.domain
            )
        }
    };
    format!(
        "# Portcullis for {domain}, written by `portcullis new {name}`.\n\
         # Check: portcullis doctor {name}     Start: systemctl enable --now portcullis@{name}\n\
         # Every key and its default: /usr/share/portcullis/examples/reference.yaml\n\
         domain: {qdomain}\n\
         listen: {listen}\n\
         state_dir: {state}\n\
         upstream:\n  url: {upstream}\n\
         {idp}\
         # Who may use the app. With nothing here, everyone the IdP signs in may.\n\
         # Uncomment and list groups, addresses or domains to allow only them:\n\
         # access:\n\
         #   allowed_groups: [grafana-users]\n\
         #   allowed_emails: [alice@example.com]\n\
         #   allowed_email_domains: [example.com]\n\
         # The nginx snippet written next to this file carries sessions up to\n\
         # 30400 bytes (users in many groups); the default, 3000, fits any nginx:\n\
         # session:\n\
         #   max_cookie_bytes: 30400\n\
         # Paths that need no login (health checks, static assets):\n\
         # passthrough:\n\
         #   paths:\n\
         #     - prefix: /api/health\n",
        domain = p.domain,
        qdomain = q(&p.domain),
        name = p.name,
        listen = q(&p.listen),
        state = q(&p.state_dir.display().to_string()),
        upstream = q(p.upstream.as_str()),
    )
}

fn nginx_server(listen: &str) -> String {
    match listen.strip_prefix(crate::listen::UNIX_PREFIX) {
        Some(path) => format!("server unix:{path};"),
        None => format!("server {listen};"),
    }
}

pub fn nginx(p: &Plan) -> String {
    let example = if p.forward_auth {
        NGINX_AUTH_REQUEST
    } else {
        NGINX_PROXY
    };
    let (host, port) = super::host_and_port(&p.domain);
    let id = host.replace(['.', '-'], "_");
    let mut s = example
        .replace("server 127.0.0.1:4180;", &nginx_server(&p.listen))
        .replace("app_example_com", &id)
        .replace("app.example.com", host);
    // Browsers that use another port than 443 reach nginx's TLS there, and
    // the plain-http server sends them on to it.
    if let Some(port) = port.filter(|p| *p != 443) {
        s = s
            .replace("listen 443 ssl", &format!("listen {port} ssl"))
            .replace("listen [::]:443 ssl", &format!("listen [::]:{port} ssl"))
            .replace(
                "return 301 https://$host$request_uri;",
                &format!("return 301 https://$host:{port}$request_uri;"),
            );
    }
    if p.forward_auth {
        let app = p.upstream.as_str().trim_end_matches('/');
        s = s.replace(
            "proxy_pass http://127.0.0.1:3000;",
            &format!("proxy_pass {app};"),
        );
    }
    format!(
        "# nginx site for {domain}, written by `portcullis new {name}` from the shipped\n\
         # example. Not enabled: review the certificate paths, then\n\
         #   cp {file} /etc/nginx/sites-available/{host}\n\
         #   ln -s ../sites-available/{host} /etc/nginx/sites-enabled/\n\
         #   nginx -t && systemctl reload nginx\n\n{s}",
        domain = p.domain,
        name = p.name,
        file = p.nginx_file.display(),
        host = host,
    )
}

/// What the operator registers at the IdP.
pub fn register(p: &Plan, c: &Config) -> String {
    let origin = c.public_origin();
    let prefix = crate::RESERVED_PREFIX;
    if let Some(o) = &c.oidc {
        format!(
            "Register at the OpenID provider ({issuer}), client `{client}`:\n\
             \x20 client type:              confidential (client secret, {auth})\n\
             \x20 redirect URI:             {origin}{prefix}{callback}\n\
             \x20 post-logout redirect URI: {origin}{prefix}signed-out\n\
             \x20 scopes:                   {scopes}\n\
             \x20 claims in the ID token:   sub, {email} (+ email_verified), {name}, preferred_username, {groups} (the groups the access rules use)\n",
            issuer = o.issuer,
            client = o.client_id,
            auth = match o.token_endpoint_auth {
                crate::config::oidc::TokenEndpointAuth::ClientSecretBasic => "client_secret_basic",
                crate::config::oidc::TokenEndpointAuth::ClientSecretPost => "client_secret_post",
            },
            callback = crate::idp::oidc::CALLBACK,
            scopes = o.scopes.join(" "),
            email = o.claims.email,
            name = o.claims.name,
            groups = o.claims.groups,
        )
    } else if let Some(s) = &c.saml {
        format!(
            "Register at the SAML IdP (or upload {metadata_file}):\n\
             \x20 SP entity ID:     {entity}\n\
             \x20 ACS URL:          {acs} (HTTP-POST)\n\
             \x20 SLO URL:          {slo} (HTTP-Redirect)\n\
             \x20 SP metadata URL:  {md_url}\n\
             \x20 SP metadata file: {metadata_file}\n\
             \x20 NameID:           persistent or emailAddress\n\
             \x20 attributes:       uid (or sAMAccountName / upn), mail, displayName, groups (memberOf)\n",
            entity = s.sp_entity_id,
            acs = s.acs_url,
            slo = s.slo_url,
            md_url = s.sp_metadata_url,
            metadata_file = super::files::sp_metadata_file(p).display(),
        )
    } else {
        String::new()
    }
}

pub fn next_steps(p: &Plan, ready: bool) -> String {
    let mut s = String::from("Next:\n");
    if let Idp::Oidc { secret_file, .. } = &p.idp
        && !secret_file.exists()
    {
        s.push_str(&format!(
            "  write the client secret:  (umask 027; printf '%s' 'SECRET' > {f}; chgrp portcullis {f})\n",
            f = secret_file.display()
        ));
    }
    s.push_str(&format!(
        "  put nginx in front:       see the top of {}\n  check everything:         portcullis doctor {}\n  start it (and at boot):   systemctl enable --now portcullis@{}\n",
        p.nginx_file.display(),
        p.name,
        p.name
    ));
    if !ready {
        s.push_str("  (fix what is named above first)\n");
    }
    s
}
