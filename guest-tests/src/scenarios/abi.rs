//! The ioctl ABI itself: word sizes and bit numbering, the exact errno of each rejected
//! argument, DEL and its reference rules, and the PERSIST and MULTI_FORMAT flags.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Instant;

use result_channel::Feature;

use crate::framework::{
    poll_until, wait_until, Context, Ctx, Family, Mapping, Scenario, Stop, R, REMOTE_WRITE,
};
use crate::scenarios::kit::{
    busy_events, del_once_unused, dynamic_events_errno, open_errno, status_line,
};
use crate::uapi::{self, Errno, UserReg, UserUnreg};
use crate::{check, check_eq, fail, tracefs};

const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "size8_bits_0_and_63",
        "enable_size 8: bits 0 and 63 of one u64 follow their events; the neighbouring words stay as they were",
        size8_bits_0_and_63,
    ),
    Scenario::new(
        "size4_words_at_0_and_4_mod_8",
        "enable_size 4 at addresses 0 and 4 mod 8: the kernel sets the right bit of the right u32 only",
        size4_words_at_0_and_4_mod_8,
    ),
    Scenario::new(
        "reg_rejects_bad_args",
        "REG rejects each bad size (over PAGE_SIZE even with a zero tail), flag, alignment, bit, address, name and field list with its exact errno; an unreadable struct is EFAULT; a struct with only size and name_args set is EINVAL; any other ioctl command is ENOTTY",
        reg_rejects_bad_args,
    ),
    Scenario::new(
        "reg_duplicates",
        "a taken (addr, bit) is EADDRINUSE for any event; another bit is fine; a name with other fields is EADDRINUSE",
        reg_duplicates,
    ),
    Scenario::new(
        "reg_unusable_address",
        "REG of an unmapped, read-only or NULL word fails with ENOMEM, yet the event is created on the fd",
        reg_unusable_address,
    ),
    Scenario::new(
        "reg_while_enabled",
        "REG of an event a perf probe already enables sets the bit before the ioctl returns",
        reg_while_enabled,
    ),
    Scenario::new(
        "unreg_rejects_bad_args",
        "UNREG: short size or reserved bits EINVAL, over PAGE_SIZE E2BIG even with a zero tail, an unreadable struct EFAULT, unknown (addr, bit) ENOENT (the address with its top byte set too)",
        unreg_rejects_bad_args,
    ),
    Scenario::new(
        "del_busy_then_auto_deleted",
        "DEL is EBUSY while a registration or an fd holds the event; after the last close it goes by itself",
        del_busy_then_auto_deleted,
    ),
    Scenario::new(
        "auto_deleted_after_the_last_probe",
        "an event whose user references all went while ftrace and perf were attached stays while either is, and goes by itself once the last detaches",
        auto_deleted_after_the_last_probe,
    ),
    Scenario::new(
        "persist_outlives_users",
        "a PERSIST event stays after its last user, while a twin without PERSIST released the same way goes by itself, and goes with DEL",
        persist_outlives_users,
    ).requires(&[Feature::RemoteWrite, Feature::RegPersist]),
    Scenario::new(
        "del_right_after_unreg",
        "DEL right after the UNREG of a PERSIST event's only registration is 0 or EBUSY (the unregister drops its event reference after an RCU grace period); retried, DEL succeeds within the poll deadline and the event is gone",
        del_right_after_unreg,
    ).requires(&[Feature::RemoteWrite, Feature::RegPersist]),
    Scenario::new(
        "multi_format",
        "MULTI_FORMAT lets one name carry two field lists, each its own index and user_events_multi event named NAME.HEX; a REG of the same name and fields on another fd joins the same event (enabling it sets both words)",
        multi_format,
    ).requires(&[Feature::RemoteWrite, Feature::RegMultiFormat]),
    Scenario::new(
        "multi_format_apart_from_single",
        "a MULTI_FORMAT REG never joins a single-format event of the same name and fields, nor the reverse, whichever came first: each stays its own tracepoint, and enabling one sets only its own registration's bit",
        multi_format_apart_from_single,
    ).requires(&[Feature::RemoteWrite, Feature::RegMultiFormat]),
    Scenario::new(
        "del_all_formats",
        "DEL of a name removes every MULTI_FORMAT event of it, where '-:NAME FIELDS' in dynamic_events removes that format only",
        del_all_formats,
    ).requires(&[Feature::RemoteWrite, Feature::RegPersist, Feature::RegMultiFormat]),
    Scenario::new(
        "del_takes_its_name_only",
        "DEL of each of 257 unused events, one more than the buckets of the kernel's name table so that two share one whatever its hash: each DEL is 0 and removes its own event only",
        del_takes_its_name_only,
    ),
    Scenario::new(
        "del_busy_while_probe_attached",
        "DEL of an event no registration or fd holds is EBUSY while ftrace is attached, and apart while perf is; once both have detached it succeeds",
        del_busy_while_probe_attached,
    ),
    Scenario::new(
        "status_names_probes",
        "user_events_status lists an event alone while unused, then '# Used by ftrace', '# Used by perf', '# Used by ftrace perf' as probes attach, and its Busy: count is one more while any is attached; Active: and Busy: count the lines listed and those used; one open status file rewound to 0 reads the list again, and no read leaves seq_file's complaint about its .next in the kernel log",
        status_names_probes,
    )
    // Reads a global seq_file list: see `Scenario::alone`.
    .alone(true),
    Scenario::new(
        "dynamic_events_lists_fields",
        "dynamic_events shows each event as 'u:NAME type name; struct T name SIZE; ...'; a REG of the same fields (also written 'a;b') gets the same index, another struct size is EADDRINUSE",
        dynamic_events_lists_fields,
    )
    // Reads a global seq_file list: see `Scenario::alone`.
    .alone(true),
    Scenario::new(
        "dynamic_events_delete_one",
        "'-:NAME' written to dynamic_events deletes that event only: an unused event whose name sorts before it stays",
        dynamic_events_delete_one,
    )
    // Reads a global seq_file list: see `Scenario::alone`.
    .alone(true),
    Scenario::new(
        "dynamic_events_persist",
        "an event made by 'u:NAME' in dynamic_events stays with nothing using it, while a registered twin released by its last user goes by itself; '-:NAME FIELDS' deletes it",
        dynamic_events_persist,
    ),
    Scenario::new(
        "dynamic_events_delete_busy",
        "'-:NAME' written to dynamic_events is EBUSY while a registration holds the event, and again while only the registering fd does, and leaves it whole (enabling sets the bit, a write is accepted); once the fd is closed it deletes the event",
        dynamic_events_delete_busy,
    ),
    Scenario::new(
        "field_lists_match_exactly",
        "a name matches its event only with the same field list: one field more or less is EADDRINUSE through REG (a list of one token against an event without fields too), and it or another system deletes nothing through dynamic_events, while its own system and list delete that event and not another of the same fields; an empty field (a trailing ';') is no field",
        field_lists_match_exactly,
    ),
    Scenario::new(
        "field_names_verbatim",
        "field names are taken as text, '%' and all: the format lists them as written, a second REG with the same list matches the event (its index, both bits follow enable), and dynamic_events deletes a persistent one by that list",
        field_names_verbatim,
    ),
    Scenario::new(
        "malformed_fields_refused",
        "a field list with a malformed field (a type without a name, a struct size that is not a number, a bad array size, an unknown type, a size on a non-struct) is EINVAL through REG and through 'u:NAME FIELDS' in dynamic_events; a struct size past an int's range is refused too; no event is made",
        malformed_fields_refused,
    ),
    Scenario::new(
        "dynamic_events_other_types",
        "a dynamic_events line without the 'u:' prefix is no user event: one no dynamic event type knows ('x:NAME u32 n', or 'NAME u32 n') is EINVAL and makes no event",
        dynamic_events_other_types,
    ),
    Scenario::new(
        "success_returns_zero",
        "REG, UNREG and DEL that succeed return exactly 0 from ioctl(), not merely a value that is not negative",
        success_returns_zero,
    ),
    Scenario::new(
        "dynamic_events_truncate",
        "opening dynamic_events with O_TRUNC is EBUSY and deletes nothing while any user event is in use; once every one is unused it deletes them all",
        dynamic_events_truncate,
    )
    .alone(true),
];

pub const FAMILY: Family = Family::new("abi", SCENARIOS).requires(REMOTE_WRITE);

fn size8_bits_0_and_63(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let fill = 0xa5a5_a5a5_a5a5_a5a5u64;
    for off in [0, 16] {
        unsafe { std::ptr::write_volatile(page.addr(off) as *mut u64, fill) };
    }
    let (low, high) = (cx.event_name(), cx.event_name());
    cx.reg(&low, page.addr(8), 8, 0)?;
    cx.reg(&high, page.addr(8), 8, 63)?;
    tracefs::set_enabled(&high, true)?;
    cx.wait_for("bit 63 only", || page.u64_at(8) == 1 << 63)?;
    tracefs::set_enabled(&low, true)?;
    cx.wait_for("bits 0 and 63", || page.u64_at(8) == 1 << 63 | 1)?;
    tracefs::set_enabled(&high, false)?;
    cx.wait_for("bit 0 only", || page.u64_at(8) == 1)?;
    check_eq!(
        (page.u64_at(0), page.u64_at(16)),
        (fill, fill),
        "neighbouring u64 words"
    );
    Ok(())
}

fn size4_words_at_0_and_4_mod_8(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let fill = 0x5a5a_5a5au32;
    for off in [4, 16] {
        crate::framework::write32(page.addr(off), fill);
    }
    let (even, odd) = (cx.event_name(), cx.event_name());
    cx.reg(&even, page.addr(8), 4, 31)?;
    cx.reg(&odd, page.addr(12), 4, 0)?;
    tracefs::set_enabled(&odd, true)?;
    cx.wait_for("bit 0 of the u32 at 4 mod 8", || page.u32_at(12) == 1)?;
    check_eq!(
        page.u32_at(8),
        0,
        "the u32 at 0 mod 8 after enabling the other"
    );
    check_eq!(
        page.u64_at(8),
        1 << 32,
        "the containing u64 (little-endian)"
    );
    tracefs::set_enabled(&even, true)?;
    cx.wait_for("bit 31 of the u32 at 0 mod 8", || page.u32_at(8) == 1 << 31)?;
    tracefs::set_enabled(&odd, false)?;
    cx.wait_for("u32 at 4 mod 8 cleared", || page.u32_at(12) == 0)?;
    check_eq!(
        page.u32_at(8),
        1 << 31,
        "the u32 at 0 mod 8 after disabling the other"
    );
    check_eq!(
        (page.u32_at(4), page.u32_at(16)),
        (fill, fill),
        "neighbouring u32 words"
    );
    Ok(())
}

/// A REG struct followed by bytes the kernel must see as zero (or reject).
#[repr(C, packed)]
struct LongReg {
    reg: UserReg,
    extra: u32,
}

fn reg_rejects_bad_args(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = CString::new(cx.event_name()).unwrap();
    let good = UserReg {
        size: 28,
        enable_bit: 0,
        enable_size: 4,
        flags: 0,
        enable_addr: page.addr(64) as u64,
        name_args: name.as_ptr() as u64,
        write_index: 0,
    };
    let long_name = CString::new("n".repeat(512)).unwrap();
    let mut cases: Vec<(&str, UserReg, i32)> = bad_regs(good, &page, &long_name);
    let bad_fields = [
        "long x",
        "char[0] s",
        "char[1025] s",
        "char[aa] s",
        "u32",
        "u32 a 4",
        "struct s x",
        "u32 a b c",
    ];
    let args: Vec<CString> = bad_fields
        .iter()
        .map(|f| CString::new(format!("{} {f}", name.to_str().unwrap())).unwrap())
        .collect();
    for (f, a) in bad_fields.iter().zip(&args) {
        cases.push((
            f,
            UserReg {
                name_args: a.as_ptr() as u64,
                ..good
            },
            libc::EINVAL,
        ));
    }
    let flagged = CString::new(format!("{}:flag", name.to_str().unwrap())).unwrap();
    cases.push((
        "name:flag",
        UserReg {
            name_args: flagged.as_ptr() as u64,
            ..good
        },
        libc::EINVAL,
    ));
    for (what, mut reg, want) in cases {
        check_eq!(
            uapi::reg_raw(cx.fd(), &mut reg).err(),
            Some(Errno(want)),
            "REG with {what}"
        );
    }
    regs_longer_than_the_struct(cx, good)?;
    unreadable_struct(cx, uapi::DIAG_IOCSREG, "REG", 28)?;
    other_ioctls_enotty(cx)?;
    Ok(())
}

/// user_events_data knows three ioctl commands; any other is ENOTTY, whatever its argument
/// (here a readable, zeroed page): the next number of `'*'` with and without a direction,
/// DEL's number with REG's direction and size, and a terminal's TCGETS.
fn other_ioctls_enotty(cx: &Ctx) -> R {
    let tail = ZeroTail::new()?;
    let arg = tail.put(0u64);
    for (what, req) in [
        ("_IO('*', 3)", 0x2A03),
        ("_IOWR('*', 3, ptr)", 0xC008_2A03),
        ("_IOWR('*', 1, ptr) (DEL's number)", 0xC008_2A01),
        ("TCGETS", libc::TCGETS as libc::c_ulong),
    ] {
        check_eq!(
            uapi::ioctl_addr(cx.fd(), req, arg).err(),
            Some(Errno(libc::ENOTTY)),
            "ioctl {what} ({req:#x}) on user_events_data"
        );
    }
    Ok(())
}

/// REGs the kernel must reject, each `good` with one field wrong, and the errno it must give.
fn bad_regs(
    good: UserReg,
    page: &Mapping,
    long_name: &CString,
) -> Vec<(&'static str, UserReg, i32)> {
    vec![
        ("size 27", UserReg { size: 27, ..good }, libc::EINVAL),
        // The header's comment says callers set "at a minimum" size and name_args; since
        // the remote-write ABI the enable word is required too (enable_size 0 is refused).
        (
            "only size and name_args set",
            UserReg {
                size: good.size,
                name_args: good.name_args,
                ..Default::default()
            },
            libc::EINVAL,
        ),
        (
            "size 4097 (> PAGE_SIZE)",
            UserReg { size: 4097, ..good },
            libc::E2BIG,
        ),
        (
            "unknown flag USER_EVENT_REG_MAX",
            UserReg {
                flags: uapi::USER_EVENT_REG_MAX,
                ..good
            },
            libc::EINVAL,
        ),
        (
            "enable_size 2",
            UserReg {
                enable_size: 2,
                ..good
            },
            libc::EINVAL,
        ),
        (
            "enable_size 16",
            UserReg {
                enable_size: 16,
                ..good
            },
            libc::EINVAL,
        ),
        (
            "size 4 at an address 2 mod 4",
            UserReg {
                enable_addr: page.addr(66) as u64,
                ..good
            },
            libc::EINVAL,
        ),
        (
            "size 8 at an address 4 mod 8",
            UserReg {
                enable_size: 8,
                enable_addr: page.addr(68) as u64,
                ..good
            },
            libc::EINVAL,
        ),
        (
            "bit 32 of a size-4 word",
            UserReg {
                enable_bit: 32,
                ..good
            },
            libc::EINVAL,
        ),
        (
            "bit 64 of a size-8 word",
            UserReg {
                enable_size: 8,
                enable_bit: 64,
                ..good
            },
            libc::EINVAL,
        ),
        (
            "kernel address",
            UserReg {
                enable_addr: 0xffff_8880_0000_0000,
                ..good
            },
            libc::EFAULT,
        ),
        (
            "unmapped name pointer",
            UserReg {
                name_args: 8,
                ..good
            },
            libc::EFAULT,
        ),
        (
            "512-character name",
            UserReg {
                name_args: long_name.as_ptr() as u64,
                ..good
            },
            libc::EINVAL,
        ),
    ]
}

/// REG with a struct longer than `good`'s 28 bytes: bytes past the struct must be zero, and
/// the whole at most PAGE_SIZE.
fn regs_longer_than_the_struct(cx: &Ctx, good: UserReg) -> R {
    // Bytes past the known struct: zero is accepted, anything else is E2BIG.
    let mut long = LongReg {
        reg: UserReg { size: 32, ..good },
        extra: 1,
    };
    check_eq!(
        ioctl_reg(cx.fd(), &mut long).err(),
        Some(Errno(libc::E2BIG)),
        "REG with non-zero bytes past 28"
    );
    long.extra = 0;
    check_eq!(
        ioctl_reg(cx.fd(), &mut long).err(),
        None,
        "REG of size 32 with zero bytes past 28"
    );
    // More than PAGE_SIZE is E2BIG even when every byte past the struct is zero (which
    // copy_struct_from_user alone would accept); PAGE_SIZE itself is fine.
    let tail = ZeroTail::new()?;
    for (size, want) in [
        (4097, Some(Errno(libc::E2BIG))),
        (8192, Some(Errno(libc::E2BIG))),
        (4096, None),
    ] {
        let p = tail.put(UserReg {
            size,
            enable_bit: 1,
            ..good
        });
        check_eq!(
            uapi::ioctl_addr(cx.fd(), uapi::DIAG_IOCSREG, p).err(),
            want,
            "REG of size {size} followed by zero bytes"
        );
    }
    Ok(())
}

/// Three zeroed pages to put a REG or UNREG struct at the start of, its tail all zero.
struct ZeroTail(Mapping);

impl ZeroTail {
    fn new() -> Result<Self, Stop> {
        Ok(ZeroTail(Mapping::anon_pages(
            3,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE,
        )?))
    }

    fn put<T: Copy>(&self, v: T) -> usize {
        unsafe { std::ptr::write_unaligned(self.0.ptr as *mut T, v) };
        self.0.ptr as usize
    }
}

/// A REG or UNREG argument the kernel cannot read is EFAULT, whatever it would have said
/// of the struct: NULL, an unmapped page, and a struct whose size field (`size`) is
/// readable but whose rest lies on a PROT_NONE page.
fn unreadable_struct(cx: &Ctx, req: libc::c_ulong, what: &str, size: u32) -> R {
    let pages = Mapping::anon_pages(3, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE)?;
    let none = unsafe { libc::mprotect(pages.addr(4096) as *mut _, 4096, libc::PROT_NONE) };
    check_eq!(none, 0, "mprotect: {}", std::io::Error::last_os_error());
    let gone = unsafe { libc::munmap(pages.addr(8192) as *mut _, 4096) };
    check_eq!(gone, 0, "munmap: {}", std::io::Error::last_os_error());
    let edge = pages.addr(4096 - 4);
    unsafe { std::ptr::write_unaligned(edge as *mut u32, size) };
    for (arg, p) in [
        ("a NULL argument", 0),
        (
            "its argument on an unmapped page",
            pages.addr(8192) as usize,
        ),
        ("only its size field readable", edge as usize),
    ] {
        check_eq!(
            uapi::ioctl_addr(cx.fd(), req, p).err(),
            Some(Errno(libc::EFAULT)),
            "{what} with {arg}"
        );
    }
    Ok(())
}

fn ioctl_reg(fd: BorrowedFd<'_>, long: &mut LongReg) -> uapi::SysResult<()> {
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), uapi::DIAG_IOCSREG, long as *mut LongReg) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

fn reg_duplicates(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let (first, second) = (cx.event_name(), cx.event_name());
    let addr = page.addr(0) as u64;
    cx.reg(&format!("{first} u32 a"), page.addr(0), 4, 3)?;
    check_eq!(
        uapi::reg(cx.fd(), &format!("{first} u32 a"), addr, 4, 3, 0).err(),
        Some(Errno(libc::EADDRINUSE)),
        "same event, same (addr, bit)"
    );
    check_eq!(
        uapi::reg(cx.fd(), &second, addr, 4, 3, 0).err(),
        Some(Errno(libc::EADDRINUSE)),
        "other event, same (addr, bit)"
    );
    check_eq!(
        uapi::reg(cx.fd(), &second, addr, 4, 4, 0).err(),
        None,
        "other event, same address, other bit"
    );
    check_eq!(
        uapi::reg(
            cx.fd(),
            &format!("{first} u64 a"),
            page.addr(8) as u64,
            4,
            0,
            0
        )
        .err(),
        Some(Errno(libc::EADDRINUSE)),
        "same name with other fields"
    );
    Ok(())
}

fn reg_unusable_address(cx: &mut Ctx) -> R {
    let name = cx.event_name();
    let (gone, len) = Mapping::anon(libc::MAP_PRIVATE)?.forget();
    unsafe { libc::munmap(gone as *mut _, len) };
    let readonly = Mapping::anon_pages(1, libc::PROT_READ, libc::MAP_PRIVATE)?;
    for (what, addr) in [
        ("unmapped", gone as u64),
        ("read-only", readonly.addr(0) as u64),
        ("NULL", 0),
    ] {
        check_eq!(
            uapi::reg(cx.fd(), &name, addr, 4, 0, 0).err(),
            Some(Errno(libc::ENOMEM)),
            "REG of a {what} word"
        );
    }
    check!(
        tracefs::exists(&format!("events/user_events/{name}")),
        "the event does not exist after the failed REGs"
    );
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    check_eq!(
        cx.reg(&name, page.addr(0), 4, 0)?,
        0,
        "index of the first good REG (the fd's first event)"
    );
    Ok(())
}

fn reg_while_enabled(cx: &mut Ctx) -> R {
    let holder = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    cx.reg(&name, holder.addr(0), 8, 0)?;
    let perf = uapi::perf_open_tracepoint(tracefs::event_id(&name)?)?;
    cx.wait_for("holder's bit set", || holder.u64_at(0) == 1)?;
    let page = Mapping::anon(libc::MAP_SHARED)?;
    cx.reg(&name, page.addr(8), 8, 63)?;
    check_eq!(
        page.u64_at(8),
        1 << 63,
        "word right after REG (no poll: REG writes synchronously)"
    );
    drop(perf);
    cx.wait_for("bit 63 cleared after perf close", || page.u64_at(8) == 0)?;
    Ok(())
}

fn unreg_rejects_bad_args(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    cx.reg(&name, page.addr(0), 4, 1)?;
    let good = UserUnreg {
        size: 16,
        disable_bit: 1,
        disable_addr: page.addr(0) as u64,
        ..Default::default()
    };
    let cases = [
        ("size 15", UserUnreg { size: 15, ..good }, libc::EINVAL),
        ("size 4097", UserUnreg { size: 4097, ..good }, libc::E2BIG),
        (
            "__reserved set",
            UserUnreg {
                reserved: 1,
                ..good
            },
            libc::EINVAL,
        ),
        (
            "__reserved2 set",
            UserUnreg {
                reserved2: 1,
                ..good
            },
            libc::EINVAL,
        ),
        (
            "another bit",
            UserUnreg {
                disable_bit: 2,
                ..good
            },
            libc::ENOENT,
        ),
        (
            "another address",
            UserUnreg {
                disable_addr: page.addr(4) as u64,
                ..good
            },
            libc::ENOENT,
        ),
        // The registered address with its top byte set: the kernel reads all 8 bytes of
        // disable_addr, so this is just another (unknown) address.
        (
            "the address with its top byte set",
            UserUnreg {
                disable_addr: page.addr(0) as u64 | 0xff << 56,
                ..good
            },
            libc::ENOENT,
        ),
    ];
    for (what, u, want) in cases {
        check_eq!(
            uapi::unreg_raw(cx.fd(), &u).err(),
            Some(Errno(want)),
            "UNREG with {what}"
        );
    }
    let tail = ZeroTail::new()?;
    for size in [4097, 8192] {
        let p = tail.put(UserUnreg { size, ..good });
        check_eq!(
            uapi::ioctl_addr(cx.fd(), uapi::DIAG_IOCSUNREG, p).err(),
            Some(Errno(libc::E2BIG)),
            "UNREG of size {size} followed by zero bytes"
        );
    }
    unreadable_struct(cx, uapi::DIAG_IOCSUNREG, "UNREG", 16)?;
    check_eq!(
        uapi::unreg_raw(cx.fd(), &good).err(),
        None,
        "the good UNREG after the rejected ones"
    );
    cx.reg(&name, page.addr(0), 4, 1)?;
    let p = tail.put(UserUnreg { size: 4096, ..good });
    check_eq!(
        uapi::ioctl_addr(cx.fd(), uapi::DIAG_IOCSUNREG, p).err(),
        None,
        "UNREG of size 4096 (PAGE_SIZE) followed by zero bytes"
    );
    check_eq!(
        uapi::unreg_raw(cx.fd(), &good).err(),
        Some(Errno(libc::ENOENT)),
        "UNREG after the size-4096 one removed the registration"
    );
    Ok(())
}

fn del_busy_then_auto_deleted(cx: &mut Ctx) -> R {
    let name = cx.event_name();
    check_eq!(
        uapi::del(cx.fd(), &name).err(),
        Some(Errno(libc::ENOENT)),
        "DEL of an unknown name"
    );
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let other = tracefs::open_data()?;
    uapi::reg(other.as_fd(), &name, page.addr(0) as u64, 4, 0, 0)?;
    check_eq!(
        uapi::del(cx.fd(), &name).err(),
        Some(Errno(libc::EBUSY)),
        "DEL while registered"
    );
    uapi::unreg(other.as_fd(), page.addr(0) as u64, 0)?;
    check_eq!(
        uapi::del(cx.fd(), &name).err(),
        Some(Errno(libc::EBUSY)),
        "DEL while only the registering fd is open"
    );
    drop(other);
    let dir = format!("events/user_events/{name}");
    cx.wait_for("event removed after the last reference went", || {
        !tracefs::exists(&dir)
    })?;
    check_eq!(
        uapi::del(cx.fd(), &name).err(),
        Some(Errno(libc::ENOENT)),
        "DEL after the automatic delete"
    );
    Ok(())
}

/// The probes hold references of their own: an event whose registrations and fds are gone
/// while ftrace and perf are attached must stay while either is (their last put comes from
/// the tracing layer, with event_mutex held), and go by itself after the last detaches. A
/// twin released the same way with no probe is the control: its automatic delete is how long
/// "would have gone by now" takes.
fn auto_deleted_after_the_last_probe(cx: &mut Ctx) -> R {
    let (name, twin) = (cx.event_name(), cx.event_name());
    let (dir, twin_dir) = (
        format!("events/user_events/{name}"),
        format!("events/user_events/{twin}"),
    );
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let other = tracefs::open_data()?;
    uapi::reg(other.as_fd(), &name, page.addr(0) as u64, 4, 0, 0)?;
    uapi::reg(other.as_fd(), &twin, page.addr(4) as u64, 4, 0, 0)?;
    tracefs::set_enabled(&name, true)?;
    let perf = uapi::perf_open_tracepoint(tracefs::event_id(&name)?)?;
    cx.wait_for("bit set with ftrace and perf attached", || {
        page.u32_at(0) & 1 == 1
    })?;
    for at in [0, 4] {
        uapi::unreg(other.as_fd(), page.addr(at) as u64, 0)?;
    }
    drop(other);
    let wrong = "event removed while a probe was attached";
    let control = cx.wait_for_unless(
        "the twin without a probe removed after its last reference went",
        || !tracefs::exists(&twin_dir),
        wrong,
        || !tracefs::exists(&dir),
    )?;
    cx.never_after(&format!("{wrong} (ftrace and perf)"), control, || {
        !tracefs::exists(&dir)
    })?;
    tracefs::set_enabled(&name, false)?;
    cx.never_after(&format!("{wrong} (perf, ftrace gone)"), control, || {
        !tracefs::exists(&dir)
    })?;
    drop(perf);
    cx.wait_for("event removed once the last probe detached", || {
        !tracefs::exists(&dir)
    })?;
    check_eq!(
        uapi::del(cx.fd(), &name).err(),
        Some(Errno(libc::ENOENT)),
        "DEL after the automatic delete"
    );
    Ok(())
}

fn persist_outlives_users(cx: &mut Ctx) -> R {
    let name = cx.event_name();
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    // A twin without PERSIST, registered and released the same way, is the control: its
    // automatic delete runs on the path (the last put, deferred) that would wrongly delete
    // the PERSIST one.
    let twin = cx.event_name();
    let other = tracefs::open_data()?;
    for (event, at, flags) in [(&name, 0, uapi::USER_EVENT_REG_PERSIST), (&twin, 4, 0)] {
        uapi::reg(other.as_fd(), event, page.addr(at) as u64, 4, 0, flags)?;
        uapi::unreg(other.as_fd(), page.addr(at) as u64, 0)?;
    }
    drop(other);
    let dir = format!("events/user_events/{name}");
    let twin_dir = format!("events/user_events/{twin}");
    let wrong = "PERSIST event removed without DEL";
    let control = cx.wait_for_unless(
        "the twin without PERSIST removed after its last reference went",
        || !tracefs::exists(&twin_dir),
        wrong,
        || !tracefs::exists(&dir),
    )?;
    cx.never_after(wrong, control, || !tracefs::exists(&dir))?;
    check_eq!(
        uapi::del(cx.fd(), &name).err(),
        None,
        "DEL of the unused PERSIST event"
    );
    check!(
        !tracefs::exists(&dir),
        "{dir} still exists after DEL returned"
    );
    check_eq!(
        uapi::del(cx.fd(), &name).err(),
        Some(Errno(libc::ENOENT)),
        "second DEL"
    );
    Ok(())
}

/// What upstream's `abi_test` `user.flags` does, with the retry 7.2's test added
/// (`wait_for_event_delete`): since `user_event_enabler_destroy()` hands the enabler's event
/// reference to `queue_rcu_work()`, DEL may find the event still referenced for a grace
/// period after UNREG has returned. See docs/kernel-bugs/del-after-unreg-ebusy.md.
fn del_right_after_unreg(cx: &mut Ctx) -> R {
    let name = cx.event_name();
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    // As upstream's test: REG and UNREG on an fd of their own, closed before DEL (an open
    // fd keeps a reference to each event it registered, and DEL would stay EBUSY).
    let reg_fd = tracefs::open_data()?;
    uapi::reg(
        reg_fd.as_fd(),
        &format!("{name} u32 n"),
        page.addr(0) as u64,
        4,
        0,
        uapi::USER_EVENT_REG_PERSIST,
    )?;
    uapi::unreg(reg_fd.as_fd(), page.addr(0) as u64, 0)?;
    drop(reg_fd);
    // DEL on another fd, so the retry below can borrow it while `cx` measures.
    let data = tracefs::open_data()?;
    let fd = data.as_fd();
    let first = uapi::del(fd, &name);
    check!(
        matches!(first, Ok(()) | Err(Errno(libc::EBUSY))),
        "DEL right after UNREG: {first:?}, where only 0 or EBUSY (for a grace period) is right"
    );
    cx.note(format!("DEL right after UNREG: {first:?}"));
    if first.is_err() {
        let mut last = first;
        cx.wait_for(
            "DEL succeeds once the unregister's reference is dropped",
            || {
                last = uapi::del(fd, &name);
                last != Err(Errno(libc::EBUSY))
            },
        )?;
        check_eq!(last, Ok(()), "DEL once no longer EBUSY");
    }
    let dir = format!("events/user_events/{name}");
    check!(
        !tracefs::exists(&dir),
        "{dir} still exists after DEL returned 0"
    );
    check_eq!(
        uapi::del(fd, &name).err(),
        Some(Errno(libc::ENOENT)),
        "second DEL"
    );
    Ok(())
}

fn multi_format(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    let multi = uapi::USER_EVENT_REG_MULTI_FORMAT;
    let a = uapi::reg(
        cx.fd(),
        &format!("{name} u32 a"),
        page.addr(0) as u64,
        4,
        0,
        multi,
    )?;
    let b = uapi::reg(
        cx.fd(),
        &format!("{name} u64 b"),
        page.addr(0) as u64,
        4,
        1,
        multi,
    )?;
    check!(a != b, "both formats got index {a}");
    let dirs = multi_dirs(&name)?;
    check_eq!(
        dirs.len(),
        2,
        "user_events_multi entries for {name}: {dirs:?}"
    );
    // Recording programs find the formats of a name with ^NAME\.[0-9a-fA-F]+$.
    for d in &dirs {
        let suffix = d
            .strip_prefix(name.as_str())
            .and_then(|r| r.strip_prefix('.'));
        check!(
            suffix.is_some_and(|x| !x.is_empty() && x.chars().all(|c| c.is_ascii_hexdigit())),
            "user_events_multi entry {d:?} does not match ^{name}\\.[0-9a-fA-F]+$"
        );
    }
    check!(
        !tracefs::exists(&format!("events/user_events/{name}")),
        "a MULTI_FORMAT event also shows under user_events"
    );
    // The same name and fields again, on an fd of its own as another process would: the
    // same tracepoint, so no third entry, and enabling it reaches both registrations.
    let other = tracefs::open_data()?;
    let word = Mapping::anon(libc::MAP_PRIVATE)?;
    uapi::reg(
        other.as_fd(),
        &format!("{name} u32 a"),
        word.addr(0) as u64,
        4,
        0,
        multi,
    )?;
    check_eq!(
        multi_dirs(&name)?,
        dirs,
        "user_events_multi entries for {name} after a second REG of 'u32 a' on another fd"
    );
    let a_dir = multi_dir_with(&name, "u32 a")?;
    set_multi_enabled(&a_dir, true)?;
    cx.wait_for("bit 0 of both 'u32 a' registrations", || {
        page.u32_at(0) & 1 == 1 && word.u32_at(0) == 1
    })?;
    check_eq!(
        page.u32_at(0),
        1,
        "this fd's word with {a_dir} enabled (bit 1, 'u64 b', clear)"
    );
    set_multi_enabled(&a_dir, false)?;
    cx.wait_for("both 'u32 a' bits cleared", || {
        page.u32_at(0) == 0 && word.u32_at(0) == 0
    })?;
    Ok(())
}

fn multi_format_apart_from_single(cx: &mut Ctx) -> R {
    // Both orders: find_user_event() compares the like-format test before the name, and a
    // test that only skips one way lets the second REG of either order join the first.
    // One word of each page per order: a registration outlives the loop's round, and REG
    // refuses an address and bit this mm already registered.
    let single = Mapping::anon(libc::MAP_PRIVATE)?;
    let multi = Mapping::anon(libc::MAP_PRIVATE)?;
    for (round, single_first) in [true, false].into_iter().enumerate() {
        let w = round * 8;
        let name = cx.event_name();
        let args = format!("{name} u32 a");
        let reg_single = |cx: &mut Ctx| cx.reg(&args, single.addr(w), 4, 0);
        let reg_multi = |cx: &mut Ctx| {
            uapi::reg(
                cx.fd(),
                &args,
                multi.addr(w) as u64,
                4,
                0,
                uapi::USER_EVENT_REG_MULTI_FORMAT,
            )
            .ctx(|| format!("DIAG_IOCSREG {args:?} with MULTI_FORMAT"))
        };
        let order = if single_first {
            "single-format REG first"
        } else {
            "MULTI_FORMAT REG first"
        };
        let (s, m) = if single_first {
            let s = reg_single(cx)?;
            (s, reg_multi(cx)?)
        } else {
            let m = reg_multi(cx)?;
            (reg_single(cx)?, m)
        };
        check!(s != m, "{order}: both registrations got index {s}");
        check!(
            tracefs::exists(&format!("events/user_events/{name}")),
            "{order}: no user_events/{name}"
        );
        let multi_dir = match multi_dir_with(&name, "u32 a") {
            Err(Stop::Fail(m)) => crate::fail!("{order}: {m}"),
            found => found?,
        };

        tracefs::set_enabled(&name, true)?;
        cx.wait_for(&format!("{order}: the single-format word's bit 0"), || {
            single.u32_at(w) == 1
        })?;
        check_eq!(
            multi.u32_at(w),
            0,
            "{order}: the MULTI_FORMAT word with only user_events/{name} enabled"
        );
        tracefs::set_enabled(&name, false)?;
        cx.wait_for(&format!("{order}: the single-format bit cleared"), || {
            single.u32_at(w) == 0
        })?;

        set_multi_enabled(&multi_dir, true)?;
        cx.wait_for(&format!("{order}: the MULTI_FORMAT word's bit 0"), || {
            multi.u32_at(w) == 1
        })?;
        check_eq!(
            single.u32_at(w),
            0,
            "{order}: the single-format word with only user_events_multi/{multi_dir} enabled"
        );
        set_multi_enabled(&multi_dir, false)?;
        cx.wait_for(&format!("{order}: the MULTI_FORMAT bit cleared"), || {
            multi.u32_at(w) == 0
        })?;
    }
    Ok(())
}

/// The `user_events_multi` entries (tracepoints) whose names start with `name`, sorted; none
/// when the system has no event at all.
fn multi_dirs(name: &str) -> Result<Vec<String>, Stop> {
    let rd = match std::fs::read_dir(tracefs::path("events/user_events_multi")) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        rd => rd?,
    };
    let mut dirs: Vec<String> = rd
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|d| d.starts_with(name))
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The one `user_events_multi` entry of `name` whose `format` has the field `field`
/// (`"u32 a"`).
fn multi_dir_with(name: &str, field: &str) -> Result<String, Stop> {
    let want = format!("field:{field};");
    let mut found = vec![];
    for d in multi_dirs(name)? {
        let format = std::fs::read_to_string(tracefs::path(&format!(
            "events/user_events_multi/{d}/format"
        )))?;
        if format.contains(&want) {
            found.push(d);
        }
    }
    match <[String; 1]>::try_from(found) {
        Ok([d]) => Ok(d),
        Err(found) => crate::fail!("user_events_multi entries of {name} with {field}: {found:?}"),
    }
}

/// Attaches or detaches ftrace from `user_events_multi/ENTRY` in this process's instance.
fn set_multi_enabled(entry: &str, on: bool) -> R {
    let p = tracefs::instance_path(&format!("events/user_events_multi/{entry}/enable"))?;
    std::fs::write(&p, if on { "1" } else { "0" }).map_err(|e| Stop::Fail(format!("{p}: {e}")))
}

fn del_all_formats(cx: &mut Ctx) -> R {
    let name = cx.event_name();
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let addr = page.addr(0) as u64;
    // PERSIST, so that the formats stay once unused; registered on an fd of their own,
    // closed before the deletes (an open fd holds its events).
    let flags = uapi::USER_EVENT_REG_PERSIST | uapi::USER_EVENT_REG_MULTI_FORMAT;
    let reg_fd = tracefs::open_data()?;
    for (bit, fields) in [(0, "u32 a"), (1, "u64 b"), (2, "u8 c")] {
        uapi::reg(
            reg_fd.as_fd(),
            &format!("{name} {fields}"),
            addr,
            4,
            bit,
            flags,
        )?;
        uapi::unreg(reg_fd.as_fd(), addr, bit)?;
    }
    drop(reg_fd);
    let dirs = multi_dirs(&name)?;
    check_eq!(
        dirs.len(),
        3,
        "user_events_multi entries for {name}: {dirs:?}"
    );
    let b_dir = multi_dir_with(&name, "u64 b")?;
    // dynamic_events matches the name and the field list. An UNREG drops its reference
    // after a grace period: EBUSY until then.
    let cmd = format!("-:{name} u64 b");
    let mut last = None;
    cx.wait_for(
        &format!("'{cmd}' accepted once the format is unused"),
        || match tracefs::dynamic_events_command(&cmd) {
            // The error carries the path, not the errno: its kind says EBUSY.
            Err(e) if e.kind() == std::io::ErrorKind::ResourceBusy => false,
            r => {
                last = Some(r.map_err(|e| e.to_string()));
                true
            }
        },
    )?;
    check_eq!(last, Some(Ok(())), "'{cmd}' written to dynamic_events");
    let others: Vec<String> = dirs.iter().filter(|d| **d != b_dir).cloned().collect();
    check_eq!(
        multi_dirs(&name)?,
        others,
        "user_events_multi entries for {name} after '{cmd}' (it was {b_dir})"
    );
    check_eq!(
        del_once_unused(cx.fd(), &name, cx.poll_deadline).err(),
        None,
        "DEL of {name}, once unused"
    );
    check_eq!(
        multi_dirs(&name)?,
        Vec::<String>::new(),
        "user_events_multi entries for {name} after one DEL"
    );
    check_eq!(
        uapi::del(cx.fd(), &name).err(),
        Some(Errno(libc::ENOENT)),
        "second DEL"
    );
    Ok(())
}

fn del_busy_while_probe_attached(cx: &mut Ctx) -> R {
    let name = cx.event_name();
    let dir = format!("events/user_events/{name}");
    // Made through dynamic_events: persistent, and held by no registration and no fd, so
    // only a probe can make it busy.
    tracefs::dynamic_events_command(&format!("u:{name} u32 n"))?;
    tracefs::set_enabled(&name, true)?;
    check_eq!(
        uapi::del(cx.fd(), &name).err(),
        Some(Errno(libc::EBUSY)),
        "DEL while ftrace is attached"
    );
    tracefs::set_enabled(&name, false)?;
    let perf = uapi::perf_open_tracepoint(tracefs::event_id(&name)?)?;
    check_eq!(
        uapi::del(cx.fd(), &name).err(),
        Some(Errno(libc::EBUSY)),
        "DEL while perf is attached"
    );
    check!(tracefs::exists(&dir), "{dir} gone after the refused DELs");
    drop(perf);
    check_eq!(
        del_once_unused(cx.fd(), &name, cx.poll_deadline).err(),
        None,
        "DEL once ftrace and perf have detached"
    );
    check!(
        !tracefs::exists(&dir),
        "{dir} still exists after DEL returned"
    );
    Ok(())
}

fn dynamic_events_persist(cx: &mut Ctx) -> R {
    let (name, twin) = (cx.event_name(), cx.event_name());
    let (dir, twin_dir) = (
        format!("events/user_events/{name}"),
        format!("events/user_events/{twin}"),
    );
    tracefs::dynamic_events_command(&format!("u:{name} u32 n"))?;
    check!(
        tracefs::exists(&dir),
        "{dir} missing after 'u:{name} u32 n'"
    );
    // The control: a twin registered without PERSIST and released, whose automatic delete
    // runs on the path (the last put, deferred) that would wrongly delete the other.
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let other = tracefs::open_data()?;
    uapi::reg(
        other.as_fd(),
        &format!("{twin} u32 n"),
        page.addr(0) as u64,
        4,
        0,
        0,
    )?;
    uapi::unreg(other.as_fd(), page.addr(0) as u64, 0)?;
    drop(other);
    let wrong = "event made through dynamic_events removed without a delete";
    let control = cx.wait_for_unless(
        "the registered twin removed after its last reference went",
        || !tracefs::exists(&twin_dir),
        wrong,
        || !tracefs::exists(&dir),
    )?;
    cx.never_after(wrong, control, || !tracefs::exists(&dir))?;
    tracefs::dynamic_events_command(&format!("-:{name} u32 n"))?;
    check!(
        !tracefs::exists(&dir),
        "{dir} still exists after '-:{name} u32 n'"
    );
    Ok(())
}

/// `dynamic_events` deletes through the dynamic-event layer, which leaves the reference test
/// to user_events: a delete that skipped it would free an event a process still writes and
/// the kernel still updates the word of. The event is made through dynamic_events, so that
/// it persists and the delete is the only way it goes.
fn dynamic_events_delete_busy(cx: &mut Ctx) -> R {
    let name = cx.event_name();
    let dir = format!("events/user_events/{name}");
    tracefs::dynamic_events_command(&format!("u:{name} u32 n"))?;
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let word = page.addr(0) as u64;
    let data = tracefs::open_data()?;
    let idx = uapi::reg(data.as_fd(), &format!("{name} u32 n"), word, 4, 0, 0)?;
    // With its field list: without one, it names an event without fields.
    let delete = format!("-:{name} u32 n");
    // Whole after a refused delete: enabling it sets the registration's bit (while there is
    // one), and a write with the fd's index is accepted.
    let busy = |cx: &mut Ctx, holder: &str, registered: bool| -> R {
        check_eq!(
            dynamic_events_errno(&delete)?,
            Some(Errno(libc::EBUSY)),
            "'{delete}' written to dynamic_events while {holder} holds the event"
        );
        check!(
            tracefs::exists(&dir),
            "{dir} gone after a refused '{delete}' ({holder} holds it)"
        );
        tracefs::set_enabled(&name, true)?;
        let set = if registered {
            cx.wait_for(
                &format!("bit 0 set by the enable after the refused delete ({holder})"),
                || page.u32_at(0) & 1 != 0,
            )
            .map(drop)
        } else {
            Ok(())
        };
        let written = uapi::write_event(data.as_fd(), idx, &7u32.to_ne_bytes());
        tracefs::set_enabled(&name, false)?;
        set?;
        check_eq!(
            written,
            Ok(8),
            "write with the event's index after the refused delete ({holder})"
        );
        Ok(())
    };
    busy(cx, "a registration", true)?;
    uapi::unreg(data.as_fd(), word, 0)?;
    busy(cx, "the registering fd", false)?;
    drop(data);
    // The UNREG drops its reference after an RCU grace period: EBUSY until then.
    let mut last = None;
    cx.wait_for(
        &format!("'{delete}' accepted once the fd was closed"),
        || match dynamic_events_errno(&delete) {
            Ok(Some(Errno(libc::EBUSY))) => false,
            r => {
                last = Some(r.map_err(|s| format!("{s:?}")));
                true
            }
        },
    )?;
    check_eq!(
        last,
        Some(Ok(None)),
        "'{delete}' written once nothing held the event"
    );
    check!(
        !tracefs::exists(&dir),
        "{dir} still exists after '{delete}'"
    );
    Ok(())
}

/// A tool that watches `user_events_status` keeps it open and rewinds it (lseek to 0) before
/// each read: the second read of one open file must list the event again.
fn check_rewound_status_reads_again(name: &str) -> R {
    use std::io::{Read, Seek, SeekFrom};
    let path = tracefs::path("user_events_status");
    let mut f = std::fs::File::open(&path).ctx(|| format!("open {path}"))?;
    let mut first = String::new();
    f.read_to_string(&mut first)
        .ctx(|| format!("first read of {path}"))?;
    f.seek(SeekFrom::Start(0))
        .ctx(|| format!("lseek({path}, 0, SEEK_SET) after reading it"))?;
    let mut again = String::new();
    f.read_to_string(&mut again)
        .ctx(|| format!("read of {path} after rewinding it"))?;
    let lists = |text: &str| text.lines().any(|l| l == name);
    check!(
        lists(&first) && lists(&again),
        "{name} in the first read of one open {path} ({}) and in the read after lseek to 0 ({}): {again:?}",
        lists(&first),
        lists(&again)
    );
    // seq_file's read loop checks every .next it calls: one that leaves the position where it
    // was gets a complaint in the kernel log (at info level, below the console's) and the
    // read goes on as if it had moved it, so the text above cannot show it.
    let complaint = "user_seq_next did not update position index";
    check_eq!(
        crate::framework::kmsg_count(complaint)?,
        0,
        "kernel log records \"... {complaint}\" after reading {path}"
    );
    Ok(())
}

fn status_names_probes(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    cx.reg(&name, page.addr(0), 4, 0)?;
    let want = |users: &str| Some(format!("{name}{users}"));
    check_eq!(status_line(&name)?, want(""), "status line with no probe");
    check_status_counts("no probe")?;
    check_rewound_status_reads_again(&name)?;
    // Busy: counts the events anything is attached to; no other scenario runs beside this
    // one, so only this event's probes change it.
    let idle = busy_events()?;
    tracefs::set_enabled(&name, true)?;
    cx.wait_for("bit set with ftrace", || page.u32_at(0) == 1)?;
    check_eq!(
        status_line(&name)?,
        want(" # Used by ftrace"),
        "status line with ftrace"
    );
    check_eq!(busy_events()?, idle + 1, "Busy: with ftrace attached");
    check_status_counts("ftrace attached")?;
    tracefs::set_enabled(&name, false)?;
    cx.wait_for("bit cleared", || page.u32_at(0) == 0)?;
    check_eq!(status_line(&name)?, want(""), "status line after ftrace");
    check_eq!(busy_events()?, idle, "Busy: after ftrace detached");
    let perf = uapi::perf_open_tracepoint(tracefs::event_id(&name)?)?;
    cx.wait_for("bit set with perf", || page.u32_at(0) == 1)?;
    check_eq!(
        status_line(&name)?,
        want(" # Used by perf"),
        "status line with perf"
    );
    check_eq!(busy_events()?, idle + 1, "Busy: with perf attached");
    tracefs::set_enabled(&name, true)?;
    check_eq!(
        status_line(&name)?,
        want(" # Used by ftrace perf"),
        "status line with ftrace and perf"
    );
    check_eq!(
        busy_events()?,
        idle + 1,
        "Busy: with ftrace and perf attached (one event)"
    );
    check_status_counts("ftrace and perf attached")?;
    tracefs::set_enabled(&name, false)?;
    drop(perf);
    cx.wait_for("bit cleared once both are gone", || page.u32_at(0) == 0)?;
    check_eq!(status_line(&name)?, want(""), "status line after both");
    check_eq!(busy_events()?, idle, "Busy: after both detached");
    uapi::unreg(cx.fd(), page.addr(0) as u64, 0)?;
    Ok(())
}

/// Checks `Active:` and `Busy:` of one `user_events_status` snapshot count its own lines:
/// every event listed, and those listed as used.
fn check_status_counts(when: &str) -> R {
    let s = tracefs::status()?;
    let events: Vec<&str> = s.lines().take_while(|l| !l.is_empty()).collect();
    let count = |key: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|n| n.trim().parse::<usize>().ok())
    };
    let used = events.iter().filter(|l| l.contains(" # Used by")).count();
    let (active, busy) = (count("Active: "), count("Busy: "));
    check!(
        (active, busy) == (Some(events.len()), Some(used)),
        "user_events_status ({when}) gives Active: {active:?} and Busy: {busy:?} under {} event line(s), {used} of them used:\n{s}",
        events.len()
    );
    Ok(())
}

/// The `dynamic_events` line of user event `name`, if it has one.
fn dynamic_line(name: &str) -> Result<Option<String>, Stop> {
    let s = tracefs::dynamic_events()?;
    let prefix = format!("u:{name}");
    // The name ends where a character no name has begins (a space, or a wrong ';').
    Ok(s.lines()
        .find(|l| {
            l.strip_prefix(&prefix).is_some_and(|rest| {
                !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            })
        })
        .map(str::to_owned))
}

fn dynamic_events_lists_fields(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let (bare, one, several) = (cx.event_name(), cx.event_name(), cx.event_name());
    let fields = "u32 a; struct foo b 8; u8 c";
    cx.reg(&bare, page.addr(0), 4, 0)?;
    cx.reg(&format!("{one} u64 x"), page.addr(0), 4, 1)?;
    let idx = cx.reg(&format!("{several} {fields}"), page.addr(0), 4, 2)?;
    check_eq!(
        dynamic_line(&bare)?,
        Some(format!("u:{bare}")),
        "dynamic_events line of an event without fields"
    );
    check_eq!(
        dynamic_line(&one)?,
        Some(format!("u:{one} u64 x")),
        "dynamic_events line of an event with one field"
    );
    check_eq!(
        dynamic_line(&several)?,
        Some(format!("u:{several} {fields}")),
        "dynamic_events line of an event with three fields, one a struct"
    );
    // REG of an existing name compares the field lists: the same ones (the struct's size
    // included, one ';' without its space) give the same event, another size does not.
    for (bit, same) in [(3, fields), (4, "u32 a; struct foo b 8;u8 c")] {
        check_eq!(
            cx.reg(&format!("{several} {same}"), page.addr(0), 4, bit)?,
            idx,
            "index of a second REG with fields {same:?}"
        );
    }
    check_eq!(
        uapi::reg(
            cx.fd(),
            &format!("{several} u32 a; struct foo b 4; u8 c"),
            page.addr(4) as u64,
            4,
            0,
            0
        )
        .err(),
        Some(Errno(libc::EADDRINUSE)),
        "REG of the name with a struct of another size"
    );
    // A field list with one ';' and no space after it is parsed as two fields, and a REG
    // spelling it the same way again matches it.
    let tight = cx.event_name();
    let tidx = cx.reg(&format!("{tight} u32 a;u32 b"), page.addr(4), 4, 1)?;
    check_eq!(
        dynamic_line(&tight)?,
        Some(format!("u:{tight} u32 a; u32 b")),
        "dynamic_events line of 'u32 a;u32 b'"
    );
    for (bit, same) in [(2, "u32 a;u32 b"), (3, "u32 a; u32 b")] {
        check_eq!(
            cx.reg(&format!("{tight} {same}"), page.addr(4), 4, bit)?,
            tidx,
            "index of a second REG with fields {same:?}"
        );
    }
    Ok(())
}

/// The buckets of the kernel's table of event names (`DECLARE_HASHTABLE(register_table, 8)`
/// in each group): one more event than this puts two in one bucket, whatever the hash.
const NAME_TABLE_BUCKETS: usize = 256;

/// DEL finds its event by walking the name's bucket, which holds every event whose name
/// hashes there: it must compare names, or it deletes its bucket's neighbours too. Which
/// names share a bucket depends on the hash, so the check makes enough events that two
/// must (pigeonhole), then deletes each by name: a DEL that took a neighbour leaves that
/// neighbour's own DEL nothing to find.
fn del_takes_its_name_only(cx: &mut Ctx) -> R {
    let base = cx.event_name();
    let names: Vec<String> = (0..=NAME_TABLE_BUCKETS)
        .map(|i| format!("{base}_{i}"))
        .collect();
    let made = Instant::now();
    // Made through dynamic_events, so that they persist unused and DEL has no reference to
    // wait for.
    for name in &names {
        tracefs::dynamic_events_command(&format!("u:{name}"))?;
    }
    let made = made.elapsed();
    let exists = |name: &str| tracefs::exists(&format!("events/user_events/{name}"));
    let deleted = Instant::now();
    for (i, name) in names.iter().enumerate() {
        let got = uapi::del(cx.fd(), name);
        if got.is_ok() && !exists(name) {
            continue;
        }
        let left = &names[i + 1..];
        let gone: Vec<&String> = left.iter().filter(|n| !exists(n)).collect();
        for n in left {
            let _ = uapi::del(cx.fd(), n);
        }
        fail!(
            "DEL of {name} (event {} of {}, all unused): {got:?}, its directory {}; of the {} not yet deleted, gone already: {gone:?}",
            i + 1,
            names.len(),
            if exists(name) { "still there" } else { "gone" },
            left.len()
        );
    }
    cx.note(format!(
        "{} events made through dynamic_events in {} ms, each deleted by its own DEL in {} ms",
        names.len(),
        made.as_millis(),
        deleted.elapsed().as_millis()
    ));
    Ok(())
}

fn dynamic_events_delete_one(cx: &mut Ctx) -> R {
    // Persistent events made through dynamic_events, unused: only the name decides.
    let (early, late) = (cx.event_name(), cx.event_name());
    check!(early < late, "names {early} and {late} out of order");
    for name in [&early, &late] {
        tracefs::dynamic_events_command(&format!("u:{name}"))?;
        check_eq!(
            status_line(name)?,
            Some(name.clone()),
            "status line of {name} made through dynamic_events"
        );
    }
    tracefs::dynamic_events_command(&format!("-:{late}"))?;
    check_eq!(
        status_line(&late)?,
        None,
        "status line of the deleted event"
    );
    check_eq!(
        status_line(&early)?,
        Some(early.clone()),
        "status line of the other event after '-:{late}'"
    );
    check_eq!(
        dynamic_line(&early)?,
        Some(format!("u:{early}")),
        "dynamic_events line of the other event"
    );
    tracefs::dynamic_events_command(&format!("-:{early}"))?;
    check_eq!(status_line(&early)?, None, "status line after '-:{early}'");
    Ok(())
}

/// Field specs the parser must refuse, each with what is wrong with it. Each one alone makes
/// the event's field list; the kernel parses a field list to the end or not at all.
const MALFORMED_FIELDS: &[(&str, &str)] = &[
    ("__data_loc char[]", "a __data_loc type without a name"),
    ("__rel_loc char[]", "a __rel_loc type without a name"),
    ("unsigned int", "an 'unsigned' type without a name"),
    ("struct foo", "a struct type without a name"),
    ("struct foo x 1x", "a struct size that is not a number"),
    ("struct foo x -4", "a negative struct size"),
    ("struct foo x 0", "a struct of size 0"),
    ("char[ s", "an array without a size"),
    ("char[12345678] s", "an array size too long to read"),
    ("char[8 s", "an array size without ']'"),
    (
        "char[4]abcdefgh s",
        "an array type whose text after '[' does not fit the size buffer, ']' within it",
    ),
    ("float f", "an unknown type"),
    ("u32 a; float f", "an unknown type after a good field"),
    ("u32 a 4", "a size on a non-struct field"),
    ("struct foo x 8 y", "a token after a struct's size"),
];

/// user_fields_match compares an event's fields with a command's in order and must also see
/// the command end with them: a longer list is another event, not this one. user_event_parse
/// gives EADDRINUSE for a name whose fields differ; dynamic_events' delete matches the same
/// way (and by system, when the command names one), so a wrong list or system deletes
/// nothing. Fields in a command that is matched are separated by "; " (the words are joined
/// up to one holding a ';'), as `dynamic_events` shows them. An empty field (a trailing ';')
/// is skipped when an event is made, so `NAME u32 a;` makes the one-field event.
fn field_lists_match_exactly(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let addr = page.addr(0) as u64;
    let name = cx.event_name();
    cx.reg(&format!("{name} u32 a"), page.addr(0), 4, 0)?;
    for (bit, fields, what) in [
        (1, " u32 a; u32 b", "its field and one more"),
        (2, "", "no fields"),
        (3, " u64 a", "another type"),
    ] {
        check_eq!(
            uapi::reg(cx.fd(), &format!("{name}{fields}"), addr, 4, bit, 0).err(),
            Some(Errno(libc::EADDRINUSE)),
            "REG of {name:?} with {what} ('{name}{fields}') while it has 'u32 a'"
        );
    }
    check_eq!(
        uapi::reg(cx.fd(), &format!("{name} u32 a;"), addr, 4, 4, 0).err(),
        None,
        "REG of {name:?} with its own field and a trailing ';'"
    );

    // An event without fields against a list of one token: 6.12 matches the tokens one by
    // one and finds one left over; a shortcut that decides by the count alone lets it in.
    let bare = cx.event_name();
    cx.reg(&bare, page.addr(8), 4, 0)?;
    for (bit, fields) in [(1, "x"), (2, "u32")] {
        check_eq!(
            uapi::reg(
                cx.fd(),
                &format!("{bare} {fields}"),
                page.addr(8) as u64,
                4,
                bit,
                0
            )
            .err(),
            Some(Errno(libc::EADDRINUSE)),
            "REG of {bare:?} with the one-token list '{fields}' while it has no fields"
        );
    }

    // Made with a trailing ';' (an empty last field): the event has the one field.
    let trailing = cx.event_name();
    cx.reg(&format!("{trailing} u32 a;"), page.addr(4), 4, 0)?;
    let format = tracefs::format(&trailing)?;
    let fields: Vec<&str> = format
        .lines()
        .filter(|l| l.trim_start().starts_with("field:") && !l.contains("common_"))
        .collect();
    check_eq!(
        fields,
        ["\tfield:u32 a;\toffset:8;\tsize:4;\tsigned:0;"],
        "the fields of {trailing:?} made as '{trailing} u32 a;'"
    );

    // dynamic_events: a delete whose list is longer or shorter than the event's deletes
    // nothing; the exact list deletes it.
    let dynamic = cx.event_name();
    tracefs::dynamic_events_command(&format!("u:{dynamic} u32 a; u32 b\n"))
        .map_err(|e| Stop::Fail(format!("create u:{dynamic}: {e}")))?;
    for (fields, what) in [
        ("u32 a; u32 b; u32 c", "one field more"),
        ("u32 a", "one field less"),
    ] {
        let r = dynamic_events_errno(&format!("-:{dynamic} {fields}\n"))?;
        check!(r.is_some(), "'-:{dynamic} {fields}' ({what}) was accepted");
        check!(
            tracefs::exists(&format!("events/user_events/{dynamic}")),
            "{dynamic} is gone after '-:{dynamic} {fields}' ({what}, answered {r:?})"
        );
    }
    // Systems on both sides of the group's two names in strcmp() order: a match that
    // compares the wrong way round, or against the wrong name, lets one of them through.
    for system in ["kprobes", "zz_other"] {
        let other_system = format!("-:{system}/{dynamic} u32 a; u32 b\n");
        let r = dynamic_events_errno(&other_system)?;
        check!(
            r.is_some(),
            "{other_system:?} (another system) was accepted"
        );
        check!(
            tracefs::exists(&format!("events/user_events/{dynamic}")),
            "{dynamic} is gone after {other_system:?} (another system, answered {r:?})"
        );
    }
    // Another event of the same fields beside it: a delete naming the system must still
    // match the name (a match that let the system decide alone deletes every event of the
    // system with those fields).
    let bystander = cx.event_name();
    tracefs::dynamic_events_command(&format!("u:{bystander} u32 a; u32 b\n"))
        .map_err(|e| Stop::Fail(format!("create u:{bystander}: {e}")))?;
    check_eq!(
        dynamic_events_errno(&format!("-:user_events/{dynamic} u32 a; u32 b\n"))?,
        None,
        "'-:user_events/{dynamic} u32 a; u32 b' (its own system and list)"
    );
    check!(
        !tracefs::exists(&format!("events/user_events/{dynamic}")),
        "{dynamic} still exists after the delete with its own system and list"
    );
    check!(
        tracefs::exists(&format!("events/user_events/{bystander}")),
        "{bystander} (the same fields, another name) is gone after '-:user_events/{dynamic} u32 a; u32 b'"
    );
    check_eq!(
        dynamic_events_errno(&format!("-:{bystander} u32 a; u32 b\n"))?,
        None,
        "'-:{bystander} u32 a; u32 b'"
    );
    Ok(())
}

/// A field name is any word: the kernel checks no characters in it. Matching a second REG
/// (or a dynamic_events delete) against the event prints each field as text and compares;
/// a name that reached printf as a format (a '%' conversion in it) would print as something
/// else and match nothing.
fn field_names_verbatim(cx: &mut Ctx) -> R {
    const FIELDS: &str = "u32 a%d; u64 b%s%%; char c%x";
    const LINES: [&str; 3] = [
        "\tfield:u32 a%d;\toffset:8;\tsize:4;\tsigned:0;",
        "\tfield:u64 b%s%%;\toffset:12;\tsize:8;\tsigned:0;",
        "\tfield:char c%x;\toffset:20;\tsize:1;\tsigned:1;",
    ];
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    let first = cx.reg(&format!("{name} {FIELDS}"), page.addr(0), 4, 0)?;
    let format = tracefs::format(&name)?;
    for line in LINES {
        check!(
            format.lines().any(|l| l == line),
            "format of '{name} {FIELDS}' has no line {line:?}:\n{format}"
        );
    }
    let again = uapi::reg(
        cx.fd(),
        &format!("{name} {FIELDS}"),
        page.addr(4) as u64,
        4,
        1,
        0,
    )
    .map_err(|e| {
        Stop::Fail(format!(
            "second REG of '{name} {FIELDS}' (the same list): {e}"
        ))
    })?;
    check_eq!(
        again,
        first,
        "write index of a second REG of '{name} {FIELDS}' on the same fd"
    );
    tracefs::set_enabled(&name, true)?;
    wait_until(
        "both words' bits set once enabled",
        cx.poll_deadline,
        || page.u32_at(0) == 1 && page.u32_at(4) == 2,
    )?;
    tracefs::set_enabled(&name, false)?;
    wait_until(
        "both words' bits cleared once disabled",
        cx.poll_deadline,
        || page.u32_at(0) == 0 && page.u32_at(4) == 0,
    )?;

    let dynamic = cx.event_name();
    tracefs::dynamic_events_command(&format!("u:{dynamic} {FIELDS}\n"))
        .map_err(|e| Stop::Fail(format!("create u:{dynamic} {FIELDS}: {e}")))?;
    check_eq!(
        dynamic_events_errno(&format!("-:{dynamic} {FIELDS}\n"))?,
        None,
        "'-:{dynamic} {FIELDS}' (its own list)"
    );
    check!(
        !tracefs::exists(&format!("events/user_events/{dynamic}")),
        "{dynamic} still exists after the delete with its own list"
    );
    Ok(())
}

fn malformed_fields_refused(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let mut wrong = Vec::new();
    let mut names = Vec::new();
    for (i, (fields, what)) in MALFORMED_FIELDS.iter().enumerate() {
        // A name of its own per spec: an event made by a wrongly accepted spec must not turn
        // the next spec's REG into a match or an EADDRINUSE.
        let name = cx.event_name();
        let reg = uapi::reg(
            cx.fd(),
            &format!("{name} {fields}"),
            page.addr(0) as u64,
            4,
            i as u8,
            0,
        );
        if reg.err() != Some(Errno(libc::EINVAL)) {
            wrong.push(format!(
                "REG '{name} {fields}' ({what}): got {reg:?}, want EINVAL"
            ));
        }
        let dynamic = dynamic_events_errno(&format!("u:{name} {fields}"))?;
        if dynamic != Some(Errno(libc::EINVAL)) {
            wrong.push(format!(
                "dynamic_events 'u:{name} {fields}' ({what}): got {dynamic:?}, want EINVAL"
            ));
        }
        if tracefs::exists(&format!("events/user_events/{name}")) {
            wrong.push(format!("an event {name} exists after '{fields}' ({what})"));
        }
        names.push(name);
    }
    // A struct size past an int's range: the kernel reads it into an int, so 4294967295 is
    // -1, which 6.12 hands back as it is (EPERM). That errno is an accident of the parser;
    // that the field is refused and no event made is what a caller relies on.
    let huge = cx.event_name();
    let fields = "struct foo x 4294967295";
    let reg = uapi::reg(
        cx.fd(),
        &format!("{huge} {fields}"),
        page.addr(0) as u64,
        4,
        31,
        0,
    );
    if reg.is_ok() {
        wrong.push(format!(
            "REG '{huge} {fields}' (a struct of 4 GiB) was accepted: {reg:?}"
        ));
    }
    if dynamic_events_errno(&format!("u:{huge} {fields}"))?.is_none() {
        wrong.push(format!(
            "dynamic_events 'u:{huge} {fields}' (a struct of 4 GiB) was accepted"
        ));
    }
    if tracefs::exists(&format!("events/user_events/{huge}")) {
        wrong.push(format!("an event {huge} exists after '{fields}'"));
    }
    check!(
        wrong.is_empty(),
        "{} malformed field list(s) not refused as the ABI says:\n  {}",
        wrong.len(),
        wrong.join("\n  ")
    );
    // The control: the names were fine, only the fields were not.
    let name = &names[0];
    let dir = format!("events/user_events/{name}");
    tracefs::dynamic_events_command(&format!("u:{name} u32 a"))?;
    check!(
        tracefs::exists(&dir),
        "{dir} missing after 'u:{name} u32 a'"
    );
    tracefs::dynamic_events_command(&format!("-:{name} u32 a"))?;
    check!(
        !tracefs::exists(&dir),
        "{dir} still exists after '-:{name} u32 a'"
    );
    cx.note(format!(
        "{} malformed field lists refused by REG and dynamic_events",
        MALFORMED_FIELDS.len()
    ));
    Ok(())
}

fn dynamic_events_other_types(cx: &mut Ctx) -> R {
    // dynamic_events offers each line to every dynamic event type in turn; user_events must
    // pass on a line without its prefix, and one no type claims is EINVAL
    // (create_dyn_event turns the last type's ECANCELED into EINVAL).
    let name = cx.event_name();
    for line in [format!("x:{name} u32 n"), format!("{name} u32 n")] {
        check_eq!(
            dynamic_events_errno(&line)?,
            Some(Errno(libc::EINVAL)),
            "dynamic_events line {line:?}"
        );
        check!(
            !tracefs::exists(&format!("events/user_events/{name}")),
            "an event {name} exists after the dynamic_events line {line:?}"
        );
    }
    Ok(())
}

/// The uapi's ioctls return 0 on success, and callers test for exactly that (the upstream
/// selftests' `ASSERT_EQ(0, ioctl(fd, DIAG_IOCSREG, &reg))`), so a positive return breaks
/// them as an errno would. The `uapi` wrappers take any value that is not negative as
/// success; these calls look at the value itself. DEL's event is made through
/// `dynamic_events`, which leaves it unused and persistent, so that the DEL can succeed.
fn success_returns_zero(cx: &mut Ctx) -> R {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let (name, kept) = (cx.event_name(), cx.event_name());
    let cmd = CString::new(format!("{name} u32 a")).expect("no NUL in event names");
    let fd = tracefs::open_data()?;
    let mut reg = UserReg {
        size: std::mem::size_of::<UserReg>() as u32,
        enable_bit: 0,
        enable_size: 4,
        flags: 0,
        enable_addr: page.addr(0) as u64,
        name_args: cmd.as_ptr() as u64,
        write_index: u32::MAX,
    };
    let unreg = UserUnreg {
        size: std::mem::size_of::<UserUnreg>() as u32,
        disable_bit: 0,
        disable_addr: page.addr(0) as u64,
        ..Default::default()
    };
    tracefs::dynamic_events_command(&format!("u:{kept} u32 a"))?;
    let kept_name = CString::new(kept.as_str()).expect("no NUL in event names");
    let returns = |req: libc::c_ulong, arg: *const libc::c_void| {
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), req, arg) };
        (r, if r < 0 { Some(Errno::last()) } else { None })
    };
    let got = [
        (
            "REG of a new event",
            returns(uapi::DIAG_IOCSREG, &mut reg as *mut UserReg as *const _),
        ),
        (
            "UNREG of the word just registered",
            returns(uapi::DIAG_IOCSUNREG, &unreg as *const UserUnreg as *const _),
        ),
        (
            "DEL of an unused event made through dynamic_events",
            returns(uapi::DIAG_IOCSDEL, kept_name.as_ptr() as *const _),
        ),
    ];
    let wrong: Vec<String> = got
        .iter()
        .filter(|(_, (r, _))| *r != 0)
        .map(|(what, (r, e))| match e {
            Some(e) => format!("{what}: -1 ({e})"),
            None => format!("{what}: {r}"),
        })
        .collect();
    check!(
        wrong.is_empty(),
        "ioctl() that should succeed did not return 0:\n  {}",
        wrong.join("\n  ")
    );
    check!(
        !tracefs::exists(&format!("events/user_events/{kept}")),
        "{kept} still exists after its DEL returned 0"
    );
    Ok(())
}

/// Whether opening `dynamic_events` for writing with O_TRUNC (what `echo > dynamic_events`
/// does) succeeded, or its errno.
fn truncate_dynamic_events() -> Option<Errno> {
    open_errno(
        &tracefs::path("dynamic_events"),
        libc::O_WRONLY | libc::O_TRUNC,
    )
}

/// O_TRUNC on `dynamic_events` deletes every dynamic event, all or none: the kernel asks
/// each whether it is busy before it frees any (dyn_events_release_all), so one user event in
/// use makes it EBUSY with nothing deleted, and with every event unused all go. An unused
/// event is one made through `dynamic_events`; the one in use is registered. Runs alone: it
/// deletes other scenarios' unused events, and theirs in use would make it EBUSY.
fn dynamic_events_truncate(cx: &mut Ctx) -> R {
    let (unused, used) = (cx.event_name(), cx.event_name());
    let (unused_dir, used_dir) = (
        format!("events/user_events/{unused}"),
        format!("events/user_events/{used}"),
    );
    tracefs::dynamic_events_command(&format!("u:{unused} u32 n"))?;
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let other = tracefs::open_data()?;
    let word = page.addr(0) as u64;
    uapi::reg(other.as_fd(), &format!("{used} u32 n"), word, 4, 0, 0)?;
    check_eq!(
        truncate_dynamic_events(),
        Some(Errno(libc::EBUSY)),
        "O_TRUNC open of dynamic_events while {used} is registered"
    );
    for (name, dir) in [(&unused, &unused_dir), (&used, &used_dir)] {
        check!(
            tracefs::exists(dir),
            "{name} deleted by an O_TRUNC open of dynamic_events that was refused (EBUSY)"
        );
    }
    uapi::unreg(other.as_fd(), word, 0)?;
    drop(other);
    cx.wait_for(
        "the registered event removed after its last reference went",
        || !tracefs::exists(&used_dir),
    )?;
    // Another event's last reference may still be on its way (each goes after a grace
    // period): until then the truncation is EBUSY, so it is retried until the deadline.
    let mut last = None;
    let took = poll_until(cx.poll_deadline, &mut || {
        last = truncate_dynamic_events();
        last.is_none()
    });
    match took {
        Ok(d) => cx.note(format!(
            "O_TRUNC open of dynamic_events succeeded {} ms after the last user went",
            d.as_millis()
        )),
        Err(waited) => fail!(
            "O_TRUNC open of dynamic_events with only unused user events: {last:?} for {} ms, \
             want success",
            waited.as_millis()
        ),
    }
    check!(
        !tracefs::exists(&unused_dir),
        "{unused} still exists after a successful O_TRUNC open of dynamic_events"
    );
    Ok(())
}
