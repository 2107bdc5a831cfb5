//! Hands a composed mail to the configured transport (sendmail or SMTP), retrying with backoff.

use std::time::Duration;

use lettre::{
    AsyncSendmailTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    transport::smtp::extension::ClientId,
};
use tracing::{error, warn};

use super::MailerOptions;
use crate::config::{MailConfig, MailTransport};

/// Longest pause between two delivery attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// The configured way out of the host.
pub(crate) enum Transport {
    Sendmail(AsyncSendmailTransport<Tokio1Executor>),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

impl Transport {
    pub fn from_config(config: &MailConfig, hostname: &str, options: &MailerOptions) -> Self {
        match config.transport {
            MailTransport::Sendmail => {
                Self::Sendmail(AsyncSendmailTransport::<Tokio1Executor>::new_with_command(
                    config.sendmail_path.as_os_str(),
                ))
            }
            MailTransport::Smtp => {
                if !is_loopback(&config.smtp_host) {
                    warn!(
                        host = %config.smtp_host,
                        "alert mail goes to a remote SMTP server without TLS; prefer the local MTA"
                    );
                }
                Self::Smtp(
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.smtp_host)
                        .port(config.smtp_port)
                        .hello_name(ClientId::Domain(hostname.to_owned()))
                        .timeout(Some(options.attempt_timeout))
                        .build(),
                )
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Sendmail(_) => "sendmail",
            Self::Smtp(_) => "smtp",
        }
    }

    async fn send_once(&self, message: Message) -> Result<(), String> {
        match self {
            Self::Sendmail(transport) => transport.send(message).await.map_err(|e| e.to_string()),
            Self::Smtp(transport) => transport
                .send(message)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        }
    }

    /// Sends `message`, retrying up to `options.max_attempts` times with doubling delays. Each
    /// failure is logged at error level. Returns the last error when every attempt failed.
    pub async fn send_with_retry(
        &self,
        message: &Message,
        options: &MailerOptions,
    ) -> Result<(), DeliveryFailure> {
        let attempts = options.max_attempts.max(1);
        let mut delay = options.first_retry_delay;
        let mut last_error = String::new();
        for attempt in 1..=attempts {
            let outcome =
                tokio::time::timeout(options.attempt_timeout, self.send_once(message.clone()))
                    .await;
            match outcome {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(message)) => last_error = message,
                Err(_) => last_error = format!("no answer within {:?}", options.attempt_timeout),
            }
            error!(
                transport = self.name(),
                attempt,
                attempts,
                error = %last_error,
                "alert mail delivery failed"
            );
            if attempt < attempts {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
        }
        Err(DeliveryFailure {
            transport: self.name(),
            attempts,
            last_error,
        })
    }
}

/// Every attempt to deliver one mail failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("alert mail delivery via {transport} failed {attempts} times; last error: {last_error}")]
pub struct DeliveryFailure {
    pub transport: &'static str,
    pub attempts: u32,
    pub last_error: String,
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_hosts_are_recognised() {
        assert!(is_loopback("localhost"));
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("::1"));
        assert!(!is_loopback("mail.example.com"));
        assert!(!is_loopback("192.0.2.1"));
    }
}
