//! The HTTP seam: a small trait any client can implement ([`HttpClient`]), reqwest with rustls
//! as the default, and bounded retries on 429 / 5xx that honour `Retry-After`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{ClientError, Result};

/// A boxed future, as [`HttpClient::send`] returns (the core's, shared with the cache
/// accessors).
pub use tokencache::access::BoxFuture;

/// The HTTP method of a request: the protocol uses only these two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET` (discovery).
    Get,
    /// `POST` with a form body (token and device endpoints).
    Post,
}

/// A request to the identity provider.
#[derive(Clone)]
pub struct HttpRequest {
    /// GET or POST.
    pub method: Method,
    /// The absolute URL.
    pub url: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The `application/x-www-form-urlencoded` body of a POST.
    pub form: Vec<(String, String)>,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Form values carry secrets (refresh tokens, client secrets, codes): names only.
        let names: Vec<&str> = self.form.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("form_fields", &names)
            .finish_non_exhaustive()
    }
}

/// A response from the identity provider.
#[derive(Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl HttpResponse {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request got no response.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportError {
    /// No connection could be made; the request was not delivered, so it is safe to retry.
    Connect(String),
    /// The request timed out; it may have been delivered.
    Timeout,
    /// Anything else; it may have been delivered.
    Other(String),
}

/// What the client applications use to talk to the provider. Implement it to bring your own
/// HTTP stack (or to inject faults in tests).
///
/// ```
/// use tokencache_client::http::{BoxFuture, HttpClient, HttpRequest, HttpResponse, TransportError};
/// #[derive(Debug)]
/// struct Offline;
/// impl HttpClient for Offline {
///     fn send(&self, _: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
///         Box::pin(async { Err(TransportError::Connect("offline".into())) })
///     }
/// }
/// ```
pub trait HttpClient: Send + Sync + fmt::Debug {
    /// Sends one request (no retries: the caller retries).
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>>;
}

/// The default client: reqwest with rustls, a timeout per request, no redirects followed.
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
#[derive(Clone, Debug)]
pub struct ReqwestClient {
    inner: reqwest::Client,
}

#[cfg(feature = "reqwest")]
impl ReqwestClient {
    /// A client with a 30-second timeout.
    pub fn new() -> Result<ReqwestClient> {
        Self::builder(Duration::from_secs(30))
            .build()
            .map(ReqwestClient::from)
            .map_err(|e| ClientError::Configuration(format!("HTTP client: {e}")))
    }

    /// A reqwest builder with this crate's settings (timeout, no redirects, idle connections
    /// dropped after 4 s), to add root certificates or a proxy before building.
    ///
    /// Idle connections are dropped before the common 5-second keep-alive timeout of servers
    /// (Node's default among them): reusing a connection the server is closing fails a request
    /// that cannot safely be retried (a device-code poll after `slow_down` waits 6 s).
    pub fn builder(timeout: Duration) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(4))
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
    }
}

/// The client an application uses when it is given none: reqwest, built at the first request.
/// Building it reads the system's root certificates (2 to 5 ms here), which a process served
/// from its cache never needs; a failure to build is that request's error.
#[cfg(feature = "reqwest")]
#[derive(Debug)]
pub(crate) struct LazyReqwest {
    timeout: Duration,
    client: std::sync::OnceLock<std::result::Result<ReqwestClient, String>>,
}

#[cfg(feature = "reqwest")]
impl LazyReqwest {
    /// A client with this per-request timeout, not built yet.
    pub(crate) fn new(timeout: Duration) -> LazyReqwest {
        LazyReqwest {
            timeout,
            client: std::sync::OnceLock::new(),
        }
    }
}

#[cfg(feature = "reqwest")]
impl HttpClient for LazyReqwest {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        let client = self.client.get_or_init(|| {
            ReqwestClient::builder(self.timeout)
                .build()
                .map(ReqwestClient::from)
                .map_err(|e| format!("the HTTP client could not be built: {e}"))
        });
        match client {
            Ok(client) => client.send(request),
            Err(e) => {
                let e = TransportError::Other(e.clone());
                Box::pin(async move { Err(e) })
            }
        }
    }
}

#[cfg(feature = "reqwest")]
impl From<reqwest::Client> for ReqwestClient {
    fn from(inner: reqwest::Client) -> Self {
        ReqwestClient { inner }
    }
}

#[cfg(feature = "reqwest")]
impl HttpClient for ReqwestClient {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(async move {
            let mut builder = match request.method {
                Method::Get => self.inner.get(&request.url),
                Method::Post => self.inner.post(&request.url).form(&request.form),
            };
            for (k, v) in &request.headers {
                builder = builder.header(k.as_str(), v.as_str());
            }
            let classify = |e: reqwest::Error| {
                if e.is_timeout() {
                    TransportError::Timeout
                } else if e.is_connect() {
                    TransportError::Connect(error_chain(&e))
                } else {
                    TransportError::Other(error_chain(&e))
                }
            };
            let response = builder.send().await.map_err(classify)?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect();
            // Read at most MAX_RESPONSE_BYTES (and a byte to tell): a provider, or whoever
            // answers in its place, cannot make this process buffer without bound.
            let mut response = response;
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(classify)? {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(TransportError::Other(too_large()));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(HttpResponse {
                status,
                headers,
                body,
            })
        })
    }
}

/// The largest response body accepted from an identity provider: 4 MiB. Token responses and
/// discovery documents are a few kilobytes.
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;

fn too_large() -> String {
    format!(
        "the response body is larger than {} MiB",
        MAX_RESPONSE_BYTES >> 20
    )
}

#[cfg(feature = "reqwest")]
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// How often and how long to retry a request that got 429, 500, 502, 503 or 504, or could not
/// connect.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Delay before the first retry when the response has no `Retry-After` (doubles each time).
    pub base_delay: Duration,
    /// The longest wait accepted; a `Retry-After` beyond it ends the retries.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
        }
    }
}

/// The HTTP client plus the retry policy, shared by an application's requests.
#[derive(Clone, Debug)]
pub(crate) struct Http {
    pub client: Arc<dyn HttpClient>,
    pub retry: RetryPolicy,
    pub timeout: Duration,
}

fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// `Retry-After` in seconds (HTTP dates are treated as absent).
fn retry_after(response: &HttpResponse) -> Option<Duration> {
    let v = response.header("retry-after")?.trim();
    v.parse::<u64>().ok().map(Duration::from_secs)
}

fn endpoint(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or_default().to_owned()
}

impl Http {
    /// Sends with retries; returns the last response (any status) or a transport error.
    pub async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        let mut attempt = 0u32;
        let mut delay = self.retry.base_delay;
        loop {
            let outcome = self.client.send(request.clone()).await.and_then(|r| {
                // Whatever the HTTP client, a body over the limit is refused here too.
                if r.body.len() > MAX_RESPONSE_BYTES {
                    Err(TransportError::Other(too_large()))
                } else {
                    Ok(r)
                }
            });
            let wait = match &outcome {
                Ok(r) if is_retryable_status(r.status) => Some(retry_after(r).unwrap_or(delay)),
                Ok(_) => None,
                Err(TransportError::Connect(_)) => Some(delay),
                Err(_) => None,
            };
            match wait {
                Some(wait) if attempt < self.retry.max_retries && wait <= self.retry.max_delay => {
                    tracing::warn!(
                        url = %endpoint(&request.url),
                        attempt = attempt + 1,
                        wait_ms = wait.as_millis() as u64,
                        status = outcome.as_ref().ok().map(|r| r.status),
                        "retrying a request to the identity provider"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                    delay = (delay * 2).min(self.retry.max_delay);
                }
                _ => {
                    return outcome.map_err(|e| match e {
                        TransportError::Timeout => ClientError::Timeout {
                            url: endpoint(&request.url),
                            timeout: self.timeout,
                        },
                        TransportError::Connect(reason) | TransportError::Other(reason) => {
                            ClientError::Network {
                                url: endpoint(&request.url),
                                reason,
                            }
                        }
                    });
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Answers from a script, recording how many requests it got: a fault injector.
    #[derive(Debug)]
    struct Scripted(Mutex<Vec<Result<HttpResponse, TransportError>>>, Mutex<u32>);

    impl HttpClient for Scripted {
        fn send(&self, _: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
            *self.1.lock().unwrap() += 1;
            let next = self.0.lock().unwrap().remove(0);
            Box::pin(async move { next })
        }
    }

    fn response(status: u16, retry_after: Option<&str>) -> Result<HttpResponse, TransportError> {
        Ok(HttpResponse {
            status,
            headers: retry_after
                .map(|v| vec![("retry-after".to_owned(), v.to_owned())])
                .unwrap_or_default(),
            body: Vec::new(),
        })
    }

    fn http(script: Vec<Result<HttpResponse, TransportError>>) -> (Http, Arc<Scripted>) {
        let client = Arc::new(Scripted(Mutex::new(script), Mutex::new(0)));
        let http = Http {
            client: client.clone(),
            retry: RetryPolicy {
                max_retries: 2,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_secs(2),
            },
            timeout: Duration::from_secs(1),
        };
        (http, client)
    }

    fn request() -> HttpRequest {
        HttpRequest {
            method: Method::Post,
            url: "http://127.0.0.1:1/token?x=1".into(),
            headers: vec![],
            form: vec![("refresh_token".into(), "SECRET-RT".into())],
        }
    }

    #[tokio::test]
    async fn retries_429_and_5xx_then_succeeds() {
        let (http, client) = http(vec![
            response(429, Some("0")),
            response(503, None),
            response(200, None),
        ]);
        let r = http.send(request()).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(*client.1.lock().unwrap(), 3);
    }

    #[tokio::test]
    async fn retries_are_bounded() {
        let (http, client) = http(vec![
            response(500, None),
            response(500, None),
            response(500, None),
            response(200, None),
        ]);
        assert_eq!(http.send(request()).await.unwrap().status, 500);
        assert_eq!(*client.1.lock().unwrap(), 3);
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_budget_is_not_waited_for() {
        let (http, client) = http(vec![response(429, Some("3600")), response(200, None)]);
        assert_eq!(http.send(request()).await.unwrap().status, 429);
        assert_eq!(*client.1.lock().unwrap(), 1);
    }

    #[tokio::test]
    async fn a_timeout_is_not_retried_and_is_reported_as_such() {
        let (http, client) = http(vec![Err(TransportError::Timeout), response(200, None)]);
        let e = http.send(request()).await.unwrap_err();
        assert!(matches!(e, ClientError::Timeout { .. }), "{e}");
        assert!(e.is_network());
        assert!(!e.to_string().contains("x=1"));
        assert_eq!(*client.1.lock().unwrap(), 1);
    }

    #[tokio::test]
    async fn connect_errors_are_retried_then_reported_as_network() {
        let (http, _) = http(vec![
            Err(TransportError::Connect("refused".into())),
            Err(TransportError::Connect("refused".into())),
            Err(TransportError::Connect("refused".into())),
        ]);
        let e = http.send(request()).await.unwrap_err();
        assert!(matches!(e, ClientError::Network { .. }), "{e}");
    }

    #[test]
    fn debug_of_a_request_hides_form_values() {
        let text = format!("{:?}", request());
        assert!(
            text.contains("refresh_token") && !text.contains("SECRET-RT"),
            "{text}"
        );
    }
}
