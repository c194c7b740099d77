//! A job's logs around the core (`kiln logs`, and the archive an apply keeps of a destroyed
//! job's logs): reading a node's log from its provider or from an archive ([`read`]), and the
//! archives themselves ([`archive`]). Nothing here prints: what `kiln logs` prints is the CLI's
//! (`engine/cli/commands/logs.rs`); warnings go to a callback the caller gives.
//!
//! Reading. Every node by default, each line prefixed `[node N] ` (a line ends at `\n` or at
//! `\r`, kept, as progress bars redraw; a partial last line is kept until its end comes, or
//! passed on as a line past 64 KiB, or ended at the end: [`Lines`]) when the job has several
//! nodes and several logs; `--node N` prints that node as it is. Without `--follow`, each node is
//! read up to where its log ends when its printing starts (a running job's log grows meanwhile). A provider answers a read from an offset or a
//! seek ([`kiln_provider::LogSeek`]): `--tail N` seeks the end, then reads back a block at a time counting
//! newlines until it has N lines, so a long log is never held whole; `--since` seeks by time, from the time index
//! each node's wrapper keeps beside its log while it runs (`EPOCH SIZE` samples every 2 s when
//! the log grew: [`kiln_provider::logs`]), starting at the next line start; a provider without
//! one answers `E-LOGS-SINCE`, never the whole log. `--follow` starts at the tail (the last 10
//! lines unless `--tail` or `--since` say otherwise) and polls every node until each finished.
//!
//! Retention. Before an apply deletes or replaces a job ([`archive_before_delete`], called by
//! the CLI's `apply`), kiln reads every node's log through the provider and writes an archive
//! `JOB_ID/` (`job.json`: workspace, address, job_id, nodes, destroyed_at, expires_at;
//! `node-N.log`, at most the last 256 MiB of each, up to where it ended when archiving began; the logs first, `job.json` last) into a
//! [`Store`]: `kiln-logs/` of the job's checkpoint bucket when that bucket is in state and
//! outlives the apply, and either is a `local` bucket (its directory) or its provider keeps
//! kiln's files ([`kiln_provider::Provider::store`]: aws's S3 buckets, onprem's directories on a host), so
//! whoever shares the state reads them; otherwise (no bucket, one this apply deletes, a provider that cannot keep files, or a bucket
//! write that failed, with a warning) `.kiln/logs/` of the configuration directory, private to
//! its owner. How long: `KILN_LOG_RETENTION` when set (an override), else the job's
//! `log_retention`, else 7 days (`0` keeps nothing); expired archives are pruned whenever one is
//! written (in that store) or looked for (in every store). `kiln logs ADDRESS` for an address
//! no longer in state looks in `.kiln/logs/` and in `kiln-logs/` of every bucket in state (its
//! provider configured as for any command), reads the newest archive of that address in the
//! current workspace and says it shows a destroyed job's logs and where they are kept
//! (`--since` is refused there: archives keep no time index).

pub mod archive;
pub mod read;

pub use archive::{archive_before_delete, find_archive, is_local, retention_text, stores, Archive, ArchiveMeta, Store};
pub use read::{last_line, node_count, parse_since, start, Chunk, Lines, Source, MAX_NODES};
