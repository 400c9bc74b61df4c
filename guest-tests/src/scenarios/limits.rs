//! The limits of the ABI, at their boundaries: how many events may exist
//! (`/proc/sys/kernel/user_events_max`, EMFILE past it), how long a char[N] array may be
//! (MAX_FIELD_ARRAY_SIZE, 1024), and how long the REG command and a DEL name may be
//! (MAX_EVENT_DESC, 512 with the NUL).

use crate::framework::{Ctx, Family, Mapping, Scenario, Stop, R, REMOTE_WRITE};
use crate::scenarios::kit::{self, check_format, check_trace, record};
use crate::uapi::{self, Errno};
use crate::{check, check_eq, fail, tracefs};

const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "user_events_max",
        "with user_events_max lowered to N, new events are created up to N existing and the next REG is EMFILE; existing events still register; 0 refuses every new one",
        user_events_max,
    )
    // A global sysctl, and the count of every event.
    .alone(true),
    Scenario::new(
        "field_array_size_max",
        "char[1024] and unsigned char[1024] are accepted, take 1024 bytes and render all of them; char[1025] and unsigned char[1025] are EINVAL",
        field_array_size_max,
    ),
    Scenario::new(
        "event_desc_max",
        "a REG command of 511 characters is accepted and a 512-character one is EINVAL; a 511-character event name gets a working tracefs directory; DEL takes 511-character names",
        event_desc_max,
    )
    // Reads a global seq_file list: see `Scenario::alone`.
    .alone(true),
];

pub const FAMILY: Family = Family::new("limits", SCENARIOS).requires(REMOTE_WRITE);

pub(super) const SYSCTL: &str = "/proc/sys/kernel/user_events_max";

pub(super) fn read_max() -> Result<u32, Stop> {
    let s = std::fs::read_to_string(SYSCTL).map_err(|e| Stop::Fail(format!("{SYSCTL}: {e}")))?;
    s.trim()
        .parse()
        .map_err(|e| Stop::Fail(format!("{SYSCTL} reads {s:?}: {e}")))
}

pub(super) fn write_max(v: &str) -> Result<(), i32> {
    std::fs::write(SYSCTL, format!("{v}\n")).map_err(|e| e.raw_os_error().unwrap_or(0))
}

/// Puts user_events_max back however the scenario ends.
pub(super) struct Restore(pub(super) u32);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = write_max(&self.0.to_string());
    }
}

fn user_events_max(cx: &mut Ctx) -> R {
    if !std::path::Path::new("/proc/sys").exists() {
        fail!("/proc/sys is absent (a kernel without CONFIG_PROC_SYSCTL?): user_events_max cannot be checked");
    }
    if !std::path::Path::new(SYSCTL).exists() {
        fail!("{SYSCTL} is absent although /proc/sys is there");
    }
    let orig = read_max()?;
    check_eq!(orig, 32768, "user_events_max at boot");
    let restore = Restore(orig);
    // Events of earlier scenarios may still be on their way out (the automatic delete runs
    // from a workqueue): that only lowers the count while this runs.
    let base = kit::active_events()?;
    let max = base + 2;
    check_eq!(
        write_max(&max.to_string()),
        Ok(()),
        "writing {max} to {SYSCTL}"
    );
    check_eq!(read_max()?, max, "{SYSCTL} after writing it");
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let addr = page.addr(0) as u64;
    let mut made: Vec<(String, u32)> = vec![];
    let mut refused = None;
    for bit in 0..8u8 {
        let name = cx.event_name();
        match uapi::reg(cx.fd(), &name, addr, 4, bit, 0) {
            Ok(idx) => {
                let now = kit::active_events()?;
                check!(
                    now <= max,
                    "REG of a new event succeeded and made {now} events, over user_events_max {max}"
                );
                made.push((name, idx));
            }
            Err(e) => {
                check_eq!(e, Errno(libc::EMFILE), "REG of event #{bit} past the limit");
                check!(
                    !tracefs::exists(&format!("events/user_events/{name}")),
                    "the refused event {name} exists in tracefs"
                );
                refused = Some(name);
                break;
            }
        }
    }
    let Some(refused) = refused else {
        fail!("8 new events registered with user_events_max {max} and {base} existing")
    };
    check!(
        made.len() >= 2,
        "only {} new events with {base} existing and user_events_max {max}",
        made.len()
    );
    cx.note(format!(
        "{base} events existed; {} new ones were created under user_events_max {max}",
        made.len()
    ));
    // At the limit, an event that exists is found, not created.
    check_eq!(
        uapi::reg(cx.fd(), &made[0].0, page.addr(8) as u64, 4, 0, 0),
        Ok(made[0].1),
        "REG of an existing event at the limit (its index)"
    );
    let raised = max + 1;
    check_eq!(write_max(&raised.to_string()), Ok(()), "raising the limit");
    let again = uapi::reg(cx.fd(), &refused, page.addr(12) as u64, 4, 0, 0);
    check!(
        again.is_ok(),
        "REG of the refused event once the limit is raised by one: {again:?}"
    );
    check_eq!(write_max("0"), Ok(()), "writing 0 to {SYSCTL}");
    let name = cx.event_name();
    check_eq!(
        uapi::reg(cx.fd(), &name, page.addr(16) as u64, 4, 0, 0).err(),
        Some(Errno(libc::EMFILE)),
        "REG of a new event with user_events_max 0"
    );
    check_eq!(
        uapi::reg(cx.fd(), &made[1].0, page.addr(16) as u64, 4, 1, 0),
        Ok(made[1].1),
        "REG of an existing event with user_events_max 0"
    );
    check_eq!(write_max("-1"), Err(libc::EINVAL), "writing -1 to {SYSCTL}");
    check_eq!(read_max()?, 0, "{SYSCTL} after the rejected write");
    drop(restore);
    check_eq!(read_max()?, orig, "{SYSCTL} once restored");
    Ok(())
}

fn field_array_size_max(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let bad = cx.event_name();
    for f in ["char[1025] a", "unsigned char[1025] a"] {
        check_eq!(
            uapi::reg(cx.fd(), &format!("{bad} {f}"), page.addr(8) as u64, 4, 0, 0).err(),
            Some(Errno(libc::EINVAL)),
            "REG with {f}"
        );
    }
    let name = cx.event_name();
    tracefs::clear_trace()?;
    let idx = kit::enabled(
        cx,
        &page,
        &format!("{name} char[1024] a;unsigned char[1024] b;u16 n"),
    )?;
    let mut p = vec![b'x'; 1024];
    p.extend(vec![b'y'; 1023]);
    p.push(0);
    p.extend(5u16.to_ne_bytes());
    let buf = record(idx, &p);
    check_eq!(
        uapi::write(cx.fd(), &buf)?,
        buf.len(),
        "bytes write() accepted"
    );
    // One byte short of the 2050 bytes of fixed fields: the arrays count in full.
    check_eq!(
        uapi::write(cx.fd(), &buf[..buf.len() - 1]).err(),
        Some(Errno(libc::EINVAL)),
        "write of 2049 of 2050 bytes"
    );
    tracefs::set_enabled(&name, false)?;
    kit::check_array_format(
        &name,
        "\tfield:char a[",
        "];\toffset:8;\tsize:1024;\tsigned:1;",
    )?;
    kit::check_array_format(
        &name,
        "\tfield:unsigned char b[",
        "];\toffset:1032;\tsize:1024;\tsigned:0;",
    )?;
    check_format(&name, &["\tfield:u16 n;\toffset:2056;\tsize:2;\tsigned:0;"])?;
    let want = format!("a={} b={} n=0x5 (5)", "x".repeat(1024), "y".repeat(1023));
    check_trace(cx, &name, &[want.as_bytes()])
}

fn event_desc_max(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let addr = page.addr(0) as u64;
    // A command of 511 characters (512 bytes with its NUL): name, " u32 ", a long field name.
    let name = cx.event_name();
    let field = |len: usize| "f".repeat(len - name.len() - " u32 ".len());
    let cmd511 = format!("{name} u32 {}", field(511));
    let cmd512 = format!("{name} u32 {}", field(512));
    check_eq!(cmd511.len(), 511, "length of the command");
    check_eq!(
        uapi::reg(cx.fd(), &cmd512, addr, 4, 0, 0).err(),
        Some(Errno(libc::EINVAL)),
        "REG of a 512-character command"
    );
    check!(
        !tracefs::exists(&format!("events/user_events/{name}")),
        "the event of the refused 512-character command exists"
    );
    check_eq!(
        uapi::reg(cx.fd(), &cmd511, addr, 4, 0, 0).err(),
        None,
        "REG of a 511-character command"
    );
    check_format(
        &name,
        &[&format!(
            "\tfield:u32 {};\toffset:8;\tsize:4;\tsigned:0;",
            field(511)
        )],
    )?;
    uapi::unreg(cx.fd(), addr, 0)?;
    // The longest name a command can carry is 511 characters, past NAME_MAX (255): the
    // event still gets a tracefs directory whose enable file works.
    let base = cx.event_name();
    let long = format!("{base}{}", "n".repeat(511 - base.len()));
    cx.reg(&long, page.addr(4), 4, 3)?;
    check!(
        tracefs::status()?.lines().any(|l| l == long),
        "user_events_status does not list the 511-character name"
    );
    tracefs::set_enabled(&long, true)?;
    cx.wait_for(
        "bit 3 set through the 511-character name's enable file",
        || page.u32_at(4) == 1 << 3,
    )?;
    tracefs::set_enabled(&long, false)?;
    cx.wait_for("bit 3 cleared", || page.u32_at(4) == 0)?;
    uapi::unreg(cx.fd(), page.addr(4) as u64, 3)?;
    // DEL reads its name with the same limit.
    let unknown = cx.event_name();
    let del = |len: usize| format!("{unknown}{}", "d".repeat(len - unknown.len()));
    check_eq!(
        uapi::del(cx.fd(), &del(511)).err(),
        Some(Errno(libc::ENOENT)),
        "DEL of an unknown 511-character name"
    );
    check_eq!(
        uapi::del(cx.fd(), &del(512)).err(),
        Some(Errno(libc::EINVAL)),
        "DEL of a 512-character name"
    );
    Ok(())
}
