//! What the instance talks to and how it runs: the upstream accepts
//! connections, the running instance answers its health endpoint, the
//! systemd unit is enabled.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Check;
use crate::config::Config;
use crate::listen::ListenAddr;

pub async fn upstream(config: &Config) -> Check {
    let url = &config.upstream.url;
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Check::fail(
            "upstream",
            format!("{url} names no host and port"),
            "fix upstream.url",
        );
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let connect = tokio::net::TcpStream::connect((host, port));
    match tokio::time::timeout(config.upstream.connect_timeout, connect).await {
        Ok(Ok(_)) => Check::ok("upstream", format!("{url} accepts connections")),
        Ok(Err(e)) => Check::fail(
            "upstream",
            format!("cannot connect to the upstream {host}:{port}: {e}"),
            "start the app, or fix upstream.url to the address the app listens on",
        ),
        Err(_) => Check::fail(
            "upstream",
            format!(
                "no answer from the upstream {host}:{port} within {} s",
                config.upstream.connect_timeout.as_secs()
            ),
            "check that the app runs and that no firewall drops the connection",
        ),
    }
}

async fn health_over<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    host: &str,
) -> std::io::Result<String> {
    let req = format!(
        "GET {}health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: application/json\r\n\r\n",
        crate::RESERVED_PREFIX
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    s.take(16 * 1024).read_to_end(&mut buf).await?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

pub async fn instance(config: &Config, name: Option<&str>) -> Check {
    let listen = config.listen.to_string();
    let answer = async {
        match &config.listen {
            ListenAddr::Tcp(a) => {
                health_over(tokio::net::TcpStream::connect(a).await?, &config.domain).await
            }
            ListenAddr::Unix(p) => {
                health_over(tokio::net::UnixStream::connect(p).await?, &config.domain).await
            }
        }
    };
    let unit = crate::instance::unit(name.unwrap_or("NAME"));
    let fix = format!(
        "start it (`systemctl start {unit}`); `journalctl -u {unit}` says why it is not running"
    );
    match tokio::time::timeout(Duration::from_secs(5), answer).await {
        Ok(Ok(text)) if text.starts_with("HTTP/1.1 200") && text.contains(r#""status":"ok""#) => {
            Check::ok(
                "instance",
                format!("the instance on {listen} answers its health check"),
            )
        }
        Ok(Ok(text)) => Check::fail(
            "instance",
            format!(
                "{listen} answered the health check with `{}`: it is not this Portcullis instance",
                text.lines().next().unwrap_or_default()
            ),
            "another program holds the listen address: change `listen`, or stop that program",
        ),
        Ok(Err(e)) => Check::warn(
            "instance",
            format!("nothing answers on {listen}: {e}"),
            fix.clone(),
        ),
        Err(_) => Check::fail(
            "instance",
            format!("{listen} did not answer the health check within 5 s"),
            fix,
        ),
    }
}

/// `None` when this machine has no systemd to ask.
pub fn unit(name: &str) -> Option<Check> {
    let unit = crate::instance::unit(name);
    let out = std::process::Command::new("systemctl")
        .args(["is-enabled", &unit])
        .output()
        .ok()?;
    let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Some(if state == "enabled" {
        Check::ok("unit", format!("{unit} is enabled"))
    } else {
        Check::warn(
            "unit",
            format!(
                "{unit} is {}: it will not start at boot",
                if state.is_empty() {
                    "unknown to systemd"
                } else {
                    &state
                }
            ),
            format!("systemctl enable --now {unit}"),
        )
    })
}
