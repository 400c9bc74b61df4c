//! What needs privilege and what does not. PERSIST (REG and DEL) needs CAP_PERFMON or
//! CAP_SYS_ADMIN (perfmon_capable), whatever the uid; everything else an fd allows. The
//! tracefs files are root's: user_events_data 0640, user_events_status 0440. Each check runs
//! in a forked child that becomes uid/gid 65534 (or stays root) with exactly the
//! capabilities it names, confirmed from /proc/self/status.

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use result_channel::Feature;

use crate::framework::{fork, Ctx, Family, Mapping, Scenario, R, REMOTE_WRITE};
use crate::scenarios::kit::{
    all_caps_but, become_user, del_once_unused, open_errno, record, set_caps, CAP_DAC_READ_SEARCH,
    CAP_PERFMON, CAP_SYS_ADMIN,
};
use crate::uapi::{self, Errno, USER_EVENT_REG_PERSIST as PERSIST};
use crate::{check, check_eq, tracefs};

const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "persist_reg_needs_perfmon",
        "uid 65534 without capabilities registers plain events but PERSIST is EPERM (even for an existing name); CAP_PERFMON or CAP_SYS_ADMIN alone allow it; root without both gets EPERM",
        persist_reg_needs_perfmon,
    )
    .requires(&[Feature::RemoteWrite, Feature::RegPersist]),
    Scenario::new(
        "persist_del_needs_perfmon",
        "DEL of a PERSIST event by uid 65534: EBUSY while it is used, then EPERM (and it stays); with CAP_PERFMON alone it goes",
        persist_del_needs_perfmon,
    )
    .requires(&[Feature::RemoteWrite, Feature::RegPersist]),
    Scenario::new(
        "dynamic_events_needs_perfmon",
        "uid 65534 writing 'u:NAME' through a dynamic_events fd root opened gets EPERM and no event; with CAP_PERFMON alone the event is made; its '-:NAME' by uid 65534 without capabilities is EPERM and the event stays",
        dynamic_events_needs_perfmon,
    ),
    Scenario::new(
        "tracefs_files_are_roots",
        "user_events_data is 0640 and user_events_status 0440, root's: uid 65534 cannot open them for writing (even with CAP_DAC_READ_SEARCH), yet writes events through an fd it is given",
        tracefs_files_are_roots,
    ),
];

pub const FAMILY: Family = Family::new("privilege", SCENARIOS).requires(REMOTE_WRITE);

const NOBODY: u32 = 65534;
const STEP: Duration = Duration::from_secs(10);

fn persist_reg_needs_perfmon(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let addr = page.addr(0) as u64;
    let [plain, refused, by_perfmon, by_admin, by_root] = [(); 5].map(|_| cx.event_name());
    // The children register through their own fd, so that once it is closed the PERSIST
    // events they make are held by nothing and root can DEL them.
    let data = tracefs::open_data()?;
    let fd = data.as_fd();
    fork(|| {
        become_user(NOBODY, NOBODY, &[])?;
        uapi::reg(fd, &plain, addr, 4, 0, 0)
            .map_err(|e| crate::framework::Stop::Fail(format!("plain REG as uid 65534: {e}")))?;
        check_eq!(
            uapi::reg(fd, &refused, addr, 4, 1, PERSIST).err(),
            Some(Errno(libc::EPERM)),
            "PERSIST REG of a new event as uid 65534 without capabilities"
        );
        check_eq!(
            uapi::reg(fd, &plain, addr, 4, 2, PERSIST).err(),
            Some(Errno(libc::EPERM)),
            "PERSIST REG of an existing event as uid 65534 without capabilities"
        );
        uapi::unreg(fd, addr, 0)?;
        Ok(())
    })?
    .join(STEP)?;
    check!(
        !tracefs::exists(&format!("events/user_events/{refused}")),
        "the event of the refused PERSIST REG exists"
    );
    for (caps, name, bit, what) in [
        (CAP_PERFMON, &by_perfmon, 3, "CAP_PERFMON"),
        (CAP_SYS_ADMIN, &by_admin, 4, "CAP_SYS_ADMIN"),
    ] {
        fork(|| {
            become_user(NOBODY, NOBODY, &[caps])?;
            check_eq!(
                uapi::reg(fd, name, addr, 4, bit, PERSIST).err(),
                None,
                "PERSIST REG as uid 65534 with only {what}"
            );
            uapi::unreg(fd, addr, bit)?;
            Ok(())
        })?
        .join(STEP)?;
    }
    let keep = all_caps_but(&[CAP_PERFMON, CAP_SYS_ADMIN])?;
    fork(|| {
        set_caps(&keep)?;
        check_eq!(
            uapi::reg(fd, &by_root, addr, 4, 5, PERSIST).err(),
            Some(Errno(libc::EPERM)),
            "PERSIST REG as root without CAP_PERFMON and CAP_SYS_ADMIN"
        );
        Ok(())
    })?
    .join(STEP)?;
    drop(data);
    // The allowed PERSIST events outlive their users; DEL by root removes them.
    for name in [&by_perfmon, &by_admin] {
        check!(
            tracefs::exists(&format!("events/user_events/{name}")),
            "PERSIST event {name} gone after its registration"
        );
        check_eq!(
            del_once_unused(cx.fd(), name, cx.poll_deadline).err(),
            None,
            "DEL of PERSIST event {name} by root, once unused"
        );
    }
    check!(
        !tracefs::exists(&format!("events/user_events/{by_root}")),
        "the event of root's refused PERSIST REG exists"
    );
    Ok(())
}

fn persist_del_needs_perfmon(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let addr = page.addr(0) as u64;
    let (name, unknown) = (cx.event_name(), cx.event_name());
    let dir = format!("events/user_events/{name}");
    let holder = tracefs::open_data()?;
    uapi::reg(holder.as_fd(), &name, addr, 4, 0, PERSIST)?;
    let fd = cx.fd();
    fork(|| {
        become_user(NOBODY, NOBODY, &[])?;
        check_eq!(
            uapi::del(fd, &name).err(),
            Some(Errno(libc::EBUSY)),
            "DEL by uid 65534 of a PERSIST event still registered"
        );
        Ok(())
    })?
    .join(STEP)?;
    uapi::unreg(holder.as_fd(), addr, 0)?;
    drop(holder);
    let deadline = cx.poll_deadline;
    fork(|| {
        become_user(NOBODY, NOBODY, &[])?;
        // The registration's last reference goes asynchronously: EBUSY until then.
        check_eq!(
            del_once_unused(fd, &name, deadline).err(),
            Some(Errno(libc::EPERM)),
            "DEL by uid 65534 of the PERSIST event once unused"
        );
        check_eq!(
            uapi::del(fd, &unknown).err(),
            Some(Errno(libc::ENOENT)),
            "DEL by uid 65534 of an unknown name"
        );
        Ok(())
    })?
    .join(STEP)?;
    check!(
        tracefs::exists(&dir),
        "the PERSIST event is gone after uid 65534's refused DEL"
    );
    fork(|| {
        become_user(NOBODY, NOBODY, &[CAP_PERFMON])?;
        check_eq!(
            uapi::del(fd, &name).err(),
            None,
            "DEL by uid 65534 with only CAP_PERFMON"
        );
        Ok(())
    })?
    .join(STEP)?;
    check!(
        !tracefs::exists(&dir),
        "{dir} still exists after DEL returned"
    );
    Ok(())
}

fn tracefs_files_are_roots(cx: &mut Ctx) -> R {
    let (data, status) = (
        tracefs::path("user_events_data"),
        tracefs::path("user_events_status"),
    );
    for (path, mode) in [(&data, 0o640), (&status, 0o440)] {
        let m = std::fs::metadata(path)?;
        check_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid()),
            (mode, 0, 0),
            "mode, owner and group of {path}"
        );
    }
    // An event root has enabled, so that user_events itself would accept the writes below.
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    let idx = cx.reg(&format!("{name} u32 n"), page.addr(0), 4, 0)?;
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("bit set after enable", || page.u32_at(0) == 1)?;
    // The event stays enabled (ftrace holds it) without this registration, which the
    // children would otherwise inherit: after fork the next change would go through the
    // fault worker, racing this process's exit.
    uapi::unreg(cx.fd(), page.addr(0) as u64, 0)?;
    let fd = cx.fd();
    let (d, s) = (data.as_str(), status.as_str());
    let rec = record(idx, &9u32.to_ne_bytes());
    let name_ref = name.as_str();
    fork(|| {
        become_user(NOBODY, NOBODY, &[])?;
        for (path, flags, what) in [
            (d, libc::O_RDWR, "user_events_data O_RDWR"),
            (d, libc::O_RDONLY, "user_events_data O_RDONLY"),
            (s, libc::O_RDONLY, "user_events_status"),
        ] {
            check_eq!(
                open_errno(path, flags),
                Some(Errno(libc::EACCES)),
                "uid 65534 opening {what}"
            );
        }
        // An fd root opened and handed down works for writes all the same.
        check_eq!(
            uapi::write(fd, &rec),
            Ok(rec.len()),
            "uid 65534 writing through root's fd"
        );
        Ok(())
    })?
    .join(STEP)?;
    fork(|| {
        become_user(NOBODY, NOBODY, &[CAP_DAC_READ_SEARCH])?;
        for flags in [libc::O_RDWR, libc::O_WRONLY] {
            check_eq!(
                open_errno(d, flags),
                Some(Errno(libc::EACCES)),
                "uid 65534 with CAP_DAC_READ_SEARCH opening user_events_data for writing ({flags:#o})"
            );
        }
        check_eq!(
            open_errno(s, libc::O_RDONLY),
            None,
            "uid 65534 with CAP_DAC_READ_SEARCH reading user_events_status"
        );
        // Read-only, the fd still registers (the ioctl asks for no write access), but it
        // cannot write the enabled event: the file was not opened for writing.
        let ro: std::os::fd::OwnedFd = std::fs::File::open(d)?.into();
        let word = Mapping::anon(libc::MAP_PRIVATE)?;
        let ro_idx = uapi::reg(ro.as_fd(), &format!("{name_ref} u32 n"), word.addr(0) as u64, 4, 0, 0)
            .map_err(|e| crate::framework::Stop::Fail(format!("REG through a read-only fd: {e}")))?;
        check_eq!(word.u32_at(0), 1, "word registered through the read-only fd (event enabled)");
        check_eq!(
            uapi::write(ro.as_fd(), &record(ro_idx, &9u32.to_ne_bytes())).err(),
            Some(Errno(libc::EBADF)),
            "write through the read-only fd"
        );
        Ok(())
    })?
    .join(STEP)?;
    tracefs::set_enabled(&name, false)?;
    Ok(())
}

fn dynamic_events_needs_perfmon(cx: &mut Ctx) -> R {
    let (refused, allowed) = (cx.event_name(), cx.event_name());
    // Root opens the file (root's, writable by root only); the children write through it.
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(tracefs::path("dynamic_events"))?;
    let command = |cmd: String| {
        use std::io::Write;
        (&file)
            .write(cmd.as_bytes())
            .map(drop)
            .map_err(|e| Errno(e.raw_os_error().unwrap_or(0)))
    };
    let create = |name: &str| command(format!("u:{name} u32 n"));
    fork(|| {
        become_user(NOBODY, NOBODY, &[])?;
        check_eq!(
            create(&refused).err(),
            Some(Errno(libc::EPERM)),
            "'u:NAME' written to dynamic_events by uid 65534 without capabilities"
        );
        Ok(())
    })?
    .join(STEP)?;
    check!(
        !tracefs::exists(&format!("events/user_events/{refused}")),
        "the event of the refused 'u:NAME' exists"
    );
    fork(|| {
        become_user(NOBODY, NOBODY, &[CAP_PERFMON])?;
        check_eq!(
            create(&allowed).err(),
            None,
            "'u:NAME' written to dynamic_events by uid 65534 with only CAP_PERFMON"
        );
        Ok(())
    })?
    .join(STEP)?;
    let dir = format!("events/user_events/{allowed}");
    check!(
        tracefs::exists(&dir),
        "{dir} missing after the allowed 'u:NAME'"
    );
    // Events made through dynamic_events are PERSIST: deleting one there needs the same
    // capability as making it (user_event_free), even though nothing uses it.
    fork(|| {
        become_user(NOBODY, NOBODY, &[])?;
        check_eq!(
            command(format!("-:{allowed} u32 n")).err(),
            Some(Errno(libc::EPERM)),
            "'-:NAME' written to dynamic_events by uid 65534 without capabilities"
        );
        Ok(())
    })?
    .join(STEP)?;
    check!(
        tracefs::exists(&dir),
        "{dir} gone after uid 65534's refused '-:NAME'"
    );
    tracefs::dynamic_events_command(&format!("-:{allowed} u32 n"))?;
    check!(!tracefs::exists(&dir), "{dir} still exists after '-:NAME'");
    Ok(())
}
