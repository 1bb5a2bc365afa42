//! A fault-injecting TCP proxy for `scripts/soak.sh`: the same proxy the
//! network-fault tests use (`tests/support/fault_proxy.rs`), as a process.
//! Not part of the product image.
//!
//! ```text
//! fault-proxy --control 127.0.0.1:39999 \
//!     --route kafka=127.0.0.1:39093:127.0.0.1:39092 \
//!     --route broker=127.0.0.2:40911:127.0.0.1:40911
//! ```
//!
//! Each `--route NAME=LISTEN:UPSTREAM` forwards one address to another. The
//! control address takes one command per line and answers `ok` or an error:
//! `NAME pass`, `NAME cut`, `NAME blackhole`, `NAME delay MILLISECONDS`,
//! `all pass`, and `stats` (connections and bytes per route).

#[allow(dead_code)] // the tests use more of it than this binary
#[path = "../../tests/support/fault_proxy.rs"]
mod fault_proxy;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use fault_proxy::{FaultProxy, Mode};

#[derive(Parser)]
#[command(about = "A TCP proxy that can delay, cut or blackhole its traffic on command")]
struct Args {
    /// Where commands are taken, one per line.
    #[arg(long)]
    control: SocketAddr,
    /// NAME=LISTEN:UPSTREAM, e.g. kafka=127.0.0.1:39093:127.0.0.1:39092.
    #[arg(long = "route", value_parser = parse_route, required = true)]
    routes: Vec<(String, SocketAddr, SocketAddr)>,
}

fn parse_route(text: &str) -> Result<(String, SocketAddr, SocketAddr), String> {
    let usage = || format!("`{text}` is not NAME=LISTEN_IP:PORT:UPSTREAM_IP:PORT");
    let (name, addresses) = text.split_once('=').ok_or_else(usage)?;
    let parts: Vec<&str> = addresses.split(':').collect();
    let [listen_ip, listen_port, upstream_ip, upstream_port] = parts[..] else {
        return Err(usage());
    };
    let listen = format!("{listen_ip}:{listen_port}")
        .parse()
        .map_err(|_| usage())?;
    let upstream = format!("{upstream_ip}:{upstream_port}")
        .parse()
        .map_err(|_| usage())?;
    Ok((name.to_string(), listen, upstream))
}

type Routes = Arc<BTreeMap<String, FaultProxy>>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut routes = BTreeMap::new();
    for (name, listen, upstream) in args.routes {
        match FaultProxy::start(listen, upstream).await {
            Ok(proxy) => {
                println!("fault-proxy: {name} {listen} -> {upstream}");
                routes.insert(name, proxy);
            }
            Err(error) => {
                eprintln!("fault-proxy: cannot listen on {listen} for {name}: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    let control = match TcpListener::bind(args.control).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "fault-proxy: cannot listen on {} for commands: {error}",
                args.control
            );
            return ExitCode::FAILURE;
        }
    };
    println!("fault-proxy: commands on {}", args.control);
    let routes: Routes = Arc::new(routes);
    loop {
        tokio::select! {
            accepted = control.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(serve(stream, Arc::clone(&routes)));
                }
            }
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
        }
    }
}

async fn serve(stream: TcpStream, routes: Routes) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let answer = match command(&routes, &line) {
            Ok(text) => text,
            Err(error) => format!("error: {error}"),
        };
        println!("fault-proxy: {line} -> {answer}");
        if write
            .write_all(format!("{answer}\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

fn command(routes: &Routes, line: &str) -> Result<String, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words[..] {
        ["stats"] => Ok(routes
            .iter()
            .map(|(name, p)| {
                format!(
                    "{name} {:?} {} connections {} bytes",
                    p.mode(),
                    p.connections(),
                    p.bytes()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")),
        ["all", "pass"] => {
            routes.values().for_each(FaultProxy::restore);
            Ok("ok".to_string())
        }
        [name, ref rest @ ..] => {
            let proxy = routes
                .get(name)
                .ok_or_else(|| format!("no route named {name}"))?;
            proxy.set(mode(rest)?);
            Ok("ok".to_string())
        }
        [] => Err("empty command".to_string()),
    }
}

fn mode(words: &[&str]) -> Result<Mode, String> {
    match words {
        ["pass"] => Ok(Mode::Pass),
        ["cut"] => Ok(Mode::Cut),
        ["blackhole"] => Ok(Mode::Blackhole),
        ["delay", ms] => ms
            .parse()
            .map(|ms| Mode::Delay(Duration::from_millis(ms)))
            .map_err(|_| format!("`{ms}` is not a number of milliseconds")),
        _ => Err("expected pass, cut, blackhole or delay MILLISECONDS".to_string()),
    }
}
