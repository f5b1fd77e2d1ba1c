//! No work lost when a session ends: a form a person submits after their
//! session ended is kept in the browser, never on the server or in a
//! cookie. The answer to that POST is a page whose one script stores the
//! fields in the tab's `sessionStorage` and starts the login, which returns
//! to [`crate::RESUBMIT_PATH`]; that page's script takes the fields out
//! (once) and posts them again to the same-origin path they were meant for.
//! Text fields only: a body too large, not readable as a form, or carrying
//! files gets a page that says so instead, and nothing is kept.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use percent_encoding::percent_decode_str;
use serde_json::json;

use crate::pages::{Page, PageKind};
use crate::policy::FormPost;

/// The most form a browser keeps for the user (the sum of the encoded
/// body); larger forms get [`PageKind::FormNotKept`].
pub const MAX_FORM_BYTES: usize = 64 * 1024;
/// How long the rest of the body may take to arrive.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The `sessionStorage` key both scripts use.
const STORAGE_KEY: &str = "portcullis.form";

/// Why a form is not kept; audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotKept {
    #[error("the form is larger than {MAX_FORM_BYTES} bytes")]
    TooLarge,
    #[error("the form body could not be read in time")]
    Unreadable,
    #[error("the form body is not valid application/x-www-form-urlencoded UTF-8")]
    Malformed,
    #[error("forms with files are not kept")]
    Files,
    #[error("the form's target is not a path a login can return to")]
    Unreturnable,
}

/// Reads at most [`MAX_FORM_BYTES`] of `body`.
pub async fn read_body<B>(body: B) -> Result<Bytes, NotKept>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let limited = http_body_util::Limited::new(body, MAX_FORM_BYTES);
    match tokio::time::timeout(READ_TIMEOUT, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(NotKept::TooLarge),
        Ok(Err(_)) | Err(_) => Err(NotKept::Unreadable),
    }
}

/// The fields of an urlencoded body, decoded strictly: a byte sequence that
/// is not UTF-8 is refused rather than replaced, so the app never gets a
/// value the user did not type.
pub fn fields(body: &[u8]) -> Result<Vec<(String, String)>, NotKept> {
    let text = std::str::from_utf8(body).map_err(|_| NotKept::Malformed)?;
    let decode = |s: &str| -> Result<String, NotKept> {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(std::borrow::Cow::into_owned)
            .map_err(|_| NotKept::Malformed)
    };
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

/// The text fields of a `multipart/form-data` body (`content_type` names
/// its boundary), decoded strictly. A file cannot be sent again from a
/// page, so a form with one is not kept; an empty file input (no file
/// chosen) is left out, as a browser sends nothing for it either way.
pub async fn multipart_fields(
    body: Bytes,
    content_type: &str,
) -> Result<Vec<(String, String)>, NotKept> {
    let boundary = multer::parse_boundary(content_type).map_err(|_| NotKept::Malformed)?;
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut parts = multer::Multipart::new(stream, boundary);
    let mut out = Vec::new();
    while let Some(field) = parts.next_field().await.map_err(|_| NotKept::Malformed)? {
        let name = field.name().ok_or(NotKept::Malformed)?.to_string();
        let file = field.file_name().map(str::to_string);
        let bytes = field.bytes().await.map_err(|_| NotKept::Malformed)?;
        match file {
            Some(f) if f.is_empty() && bytes.is_empty() => {}
            Some(_) => return Err(NotKept::Files),
            None => out.push((
                name,
                String::from_utf8(bytes.to_vec()).map_err(|_| NotKept::Malformed)?,
            )),
        }
    }
    Ok(out)
}

/// A form to send again: where, how encoded, and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub enctype: &'static str,
    pub fields: Vec<(String, String)>,
}

/// The page that keeps `form` for `action` (a same-origin path) and goes
/// on to `login_url`.
pub fn keep_page(action: &str, form: &Kept, login_url: &str) -> Page {
    Page::new(PageKind::FormKept)
        .with_login_url(login_url)
        .with_script(
            KEEP_SCRIPT,
            json!({"key": STORAGE_KEY, "action": action, "enctype": form.enctype, "fields": form.fields, "login": login_url}),
        )
}

/// What a form that cannot be kept gets: the reason is not shown, the
/// sign-in link is.
pub fn not_kept_page(login_url: &str) -> Page {
    Page::new(PageKind::FormNotKept).with_login_url(login_url)
}

/// The page a login returns to when it was started for a kept form.
pub fn resubmit_page() -> Page {
    Page::new(PageKind::Resubmitting).with_script(RESUBMIT_SCRIPT, json!({"key": STORAGE_KEY}))
}

/// Which form to keep, if any, for a POST that needs a login;
/// `content_type` is the request's.
pub async fn keep<B>(form: FormPost, content_type: &str, body: B) -> Result<Kept, NotKept>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let body = read_body(body).await?;
    Ok(match form {
        FormPost::UrlEncoded => Kept {
            enctype: "application/x-www-form-urlencoded",
            fields: fields(&body)?,
        },
        FormPost::Multipart => Kept {
            enctype: "multipart/form-data",
            fields: multipart_fields(body, content_type).await?,
        },
    })
}

/// Stores the form in this tab, then signs in; where storage is refused
/// (private modes, quotas), says so and leaves the sign-in link.
const KEEP_SCRIPT: &str = r"(function () {
  var d = JSON.parse(document.getElementById('portcullis-data').textContent);
  try {
    sessionStorage.setItem(d.key, JSON.stringify({action: d.action, enctype: d.enctype, fields: d.fields}));
  } catch (e) {
    document.getElementById('explanation').textContent =
      'This browser does not let the page keep your form while you sign in again. Sign in, then fill it in again.';
    return;
  }
  location.replace(d.login);
})();";

/// Takes the kept form out (so it is sent once), checks that it goes to a
/// path of this origin, and posts it there.
const RESUBMIT_SCRIPT: &str = r"(function () {
  var d = JSON.parse(document.getElementById('portcullis-data').textContent);
  var kept = null;
  try {
    kept = JSON.parse(sessionStorage.getItem(d.key));
    sessionStorage.removeItem(d.key);
  } catch (e) {
    kept = null;
  }
  var ok = kept && typeof kept.action === 'string' && /^\/(?![\/\\])/.test(kept.action) &&
    Array.isArray(kept.fields);
  if (!ok) {
    document.getElementById('explanation').textContent =
      'There is no form to send: it was sent already, or this browser did not keep it.';
    var a = document.createElement('a');
    a.href = '/';
    a.textContent = 'Go to the application';
    document.getElementById('explanation').appendChild(document.createElement('br'));
    document.getElementById('explanation').appendChild(a);
    return;
  }
  var f = document.createElement('form');
  f.method = 'post';
  f.action = kept.action;
  if (kept.enctype === 'multipart/form-data') {
    f.enctype = kept.enctype;
  }
  kept.fields.forEach(function (p) {
    var i = document.createElement('input');
    i.type = 'hidden';
    i.name = String(p[0]);
    i.value = String(p[1]);
    f.appendChild(i);
  });
  document.body.appendChild(f);
  f.submit();
})();";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_decode_strictly() {
        assert_eq!(
            fields(b"title=Q3+report&body=line%0D%0Atwo&empty=&flag&%C3%A9=%E2%82%AC").unwrap(),
            [
                ("title".into(), "Q3 report".into()),
                ("body".into(), "line\r\ntwo".into()),
                ("empty".into(), String::new()),
                ("flag".into(), String::new()),
                ("é".into(), "€".into()),
            ]
        );
        assert_eq!(fields(b"a=%FF"), Err(NotKept::Malformed));
        assert_eq!(fields(b"a=\xff"), Err(NotKept::Malformed));
        assert_eq!(fields(b""), Ok(vec![]));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_not_kept() {
        let big = http_body_util::Full::new(Bytes::from(vec![b'a'; MAX_FORM_BYTES + 1]));
        assert_eq!(read_body(big).await, Err(NotKept::TooLarge));
        let fits = http_body_util::Full::new(Bytes::from(vec![b'a'; MAX_FORM_BYTES]));
        assert_eq!(read_body(fits).await.map(|b| b.len()), Ok(MAX_FORM_BYTES));
    }

    #[tokio::test]
    async fn multipart_text_fields_are_kept_and_files_are_not() {
        let ct = "multipart/form-data; boundary=XyZ";
        let part = |head: &str, body: &str| {
            format!("--XyZ\r\nContent-Disposition: form-data; {head}\r\n\r\n{body}\r\n")
        };
        let text = format!(
            "{}{}{}--XyZ--\r\n",
            part("name=\"title\"", "Q3 \u{e9}"),
            part("name=\"notes\"", "a\r\nb"),
            part("name=\"attachment\"; filename=\"\"", ""),
        );
        let kept = keep(
            FormPost::Multipart,
            ct,
            http_body_util::Full::new(Bytes::from(text)),
        )
        .await
        .unwrap();
        assert_eq!(kept.enctype, "multipart/form-data");
        assert_eq!(
            kept.fields,
            [
                ("title".into(), "Q3 \u{e9}".into()),
                ("notes".into(), "a\r\nb".into())
            ]
        );
        let with_file = format!(
            "{}{}--XyZ--\r\n",
            part("name=\"title\"", "x"),
            part("name=\"cv\"; filename=\"cv.pdf\"", "%PDF"),
        );
        assert_eq!(
            keep(
                FormPost::Multipart,
                ct,
                http_body_util::Full::new(Bytes::from(with_file))
            )
            .await,
            Err(NotKept::Files)
        );
        let no_boundary = http_body_util::Full::new(Bytes::from_static(b"--x--"));
        assert_eq!(
            keep(FormPost::Multipart, "multipart/form-data", no_boundary).await,
            Err(NotKept::Malformed)
        );
    }

    #[test]
    fn the_kept_fields_cannot_close_the_data_block() {
        let page = keep_page(
            "/notes?id=1",
            &Kept {
                enctype: "application/x-www-form-urlencoded",
                fields: vec![("t".into(), "</script><script>alert(1)</script><!--".into())],
            },
            "/.portcullis/login?rd=%2F.portcullis%2Fresubmit",
        );
        let resp = page.render(&crate::config::Pages::default(), "rid", false);
        let csp = resp.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.contains("script-src 'nonce-"), "{csp}");
        let body = futures_body(resp);
        assert_eq!(body.matches("</script>").count(), 2, "{body}");
        assert!(body.contains("\\u003c/script\\u003e"), "{body}");
    }

    fn futures_body(resp: http::Response<crate::Body>) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = rt
            .block_on(resp.into_body().collect())
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}
