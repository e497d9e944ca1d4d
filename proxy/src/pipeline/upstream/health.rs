//! Active health checks: an HTTP GET to each endpoint every interval, with thresholds.
//! The request itself is pingora-load-balancing's `HttpHealthCheck`, over pingora's connector.

use super::{sleep_while_alive, Pool};
use breakwater_config::HealthCheck;
use pingora::lb::health_check::{HealthCheck as _, HttpHealthCheck};
use pingora::lb::Backend;
use pingora::prelude::RequestHeader;
use std::sync::atomic::Ordering;
use std::sync::Weak;

pub(super) async fn check_loop(pool: Weak<Pool>, cfg: HealthCheck) {
    loop {
        let Some(p) = pool.upgrade() else { return };
        let mut checks = tokio::task::JoinSet::new();
        for ep in p.endpoints().iter() {
            let (p, cfg, ep) = (p.clone(), cfg.clone(), ep.clone());
            checks.spawn(async move {
                let ok = probe(&p, &ep, &cfg).await;
                record(&p, &ep, &cfg, ok);
            });
        }
        while checks.join_next().await.is_some() {}
        drop(p);
        if !sleep_while_alive(&pool, cfg.interval).await {
            return;
        }
    }
}

async fn probe(pool: &Pool, ep: &super::Endpoint, cfg: &HealthCheck) -> bool {
    let host = cfg
        .host
        .clone()
        .or_else(|| ep.host.clone())
        .unwrap_or_else(|| ep.addr.ip().to_string());
    let mut hc = HttpHealthCheck::new(&host, pool.config.tls.is_some());
    hc.peer_template = pool.peer(ep);
    hc.peer_template.options.connection_timeout = Some(cfg.timeout);
    hc.peer_template.options.total_connection_timeout = Some(cfg.timeout);
    hc.peer_template.options.read_timeout = Some(cfg.timeout);
    let Ok(mut req) = RequestHeader::build("GET", cfg.path.as_bytes(), None) else {
        return false;
    };
    if req.insert_header("host", &host).is_err()
        || req
            .insert_header("user-agent", "breakwater-health-check")
            .is_err()
    {
        return false;
    }
    hc.req = req;
    hc.validator = Some(Box::new(|resp| {
        if resp.status.is_success() || resp.status.is_redirection() {
            Ok(())
        } else {
            pingora::Error::e_explain(
                pingora::ErrorType::CustomCode("unhealthy status", resp.status.as_u16()),
                "health check",
            )
        }
    }));
    let backend = Backend {
        addr: pingora::protocols::l4::socket::SocketAddr::Inet(ep.addr),
        weight: 1,
        ext: Default::default(),
    };
    match tokio::time::timeout(cfg.timeout * 2, hc.check(&backend)).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!(pool = %pool.config.name, endpoint = %ep.addr, error = %e, "health check failed");
            false
        }
        Err(_) => false,
    }
}

fn record(pool: &Pool, ep: &super::Endpoint, cfg: &HealthCheck, ok: bool) {
    let (mine, other) = if ok {
        (&ep.check_successes, &ep.check_failures)
    } else {
        (&ep.check_failures, &ep.check_successes)
    };
    other.store(0, Ordering::Relaxed);
    let n = mine.fetch_add(1, Ordering::Relaxed) + 1;
    let was = ep.is_healthy();
    if ok && !was && n >= cfg.healthy_threshold {
        ep.healthy.store(true, Ordering::Relaxed);
        tracing::info!(pool = %pool.config.name, endpoint = %ep.addr, "endpoint healthy again");
    } else if !ok && was && n >= cfg.unhealthy_threshold {
        ep.healthy.store(false, Ordering::Relaxed);
        tracing::warn!(pool = %pool.config.name, endpoint = %ep.addr, "endpoint failed its health check; taken out");
    }
}
