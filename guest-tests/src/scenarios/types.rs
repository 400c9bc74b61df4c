//! Every field type the kernel's parser accepts (user_field_size), as the kernel describes
//! it in `format` (offset, size, signedness from the type's first letter, the print fmt of
//! user_field_format) and renders it in `trace` (print_fields: 1-byte fields as 'c'(n) when
//! isprint, 2/4/8-byte ones as 0x%x (%d) and 0x%llx (%lld), strings as text, other sizes as
//! <INVALID-SIZE>). Each check is on what the kernel printed, never on the bytes written.

use crate::framework::{Ctx, Family, Mapping, Scenario, R, REMOTE_WRITE};
use crate::scenarios::kit::{self, check_format, check_trace, record};
use crate::{check_eq, tracefs, uapi};

const SCENARIOS: &[Scenario] = &[
    Scenario::new(
        "integer_extremes",
        "s8..s64 and u8..u64 at their minimum and maximum: format gives size, offset, signed and %d/%u/%lld/%llu; trace renders each extreme",
        integer_extremes,
    ),
    Scenario::new(
        "c_type_names",
        "int, unsigned int, short, unsigned short, char and unsigned char are 4, 2 and 1 bytes, signed unless 'unsigned', and render as such",
        c_type_names,
    ),
    Scenario::new(
        "struct_fields",
        "struct NAME field SIZE takes SIZE bytes (the next field's offset proves it); 1/2/4/8-byte structs render as integers, others as <INVALID-SIZE>",
        struct_fields,
    ),
    Scenario::new(
        "unsigned_char_arrays",
        "char[N], unsigned char[N], __data_loc unsigned char[] and __rel_loc unsigned char[] are accepted and render as strings",
        unsigned_char_arrays,
    ),
    Scenario::new(
        "several_dynamic_fields",
        "an event with two __data_loc and two __rel_loc strings, laid out in another order than the fields, renders each string (an empty one too)",
        several_dynamic_fields,
    ),
];

pub const FAMILY: Family = Family::new("types", SCENARIOS).requires(REMOTE_WRITE);

/// Registers and enables `NAME FIELDS`, writes each payload (checking write() took all of
/// it), then disables the event; returns its name.
fn write_all(
    cx: &mut Ctx,
    fields: &str,
    payloads: &[Vec<u8>],
) -> Result<String, crate::framework::Stop> {
    let page = Mapping::anon(libc::MAP_PRIVATE)?;
    let name = cx.event_name();
    tracefs::clear_trace()?;
    let idx = kit::enabled(cx, &page, &format!("{name} {fields}"))?;
    for p in payloads {
        let buf = record(idx, p);
        check_eq!(
            uapi::write(cx.fd(), &buf)?,
            buf.len(),
            "bytes write() accepted"
        );
    }
    tracefs::set_enabled(&name, false)?;
    uapi::unreg(cx.fd(), page.addr(0) as u64, 0)?;
    Ok(name)
}

fn integer_extremes(cx: &mut Ctx) -> R {
    let payload = |a: i8, b: u8, c: i16, d: u16, e: i32, f: u32, g: i64, h: u64| {
        let mut p = vec![a as u8, b];
        p.extend(c.to_ne_bytes());
        p.extend(d.to_ne_bytes());
        p.extend(e.to_ne_bytes());
        p.extend(f.to_ne_bytes());
        p.extend(g.to_ne_bytes());
        p.extend(h.to_ne_bytes());
        p
    };
    let name = write_all(
        cx,
        "s8 a;u8 b;s16 c;u16 d;s32 e;u32 f;s64 g;u64 h",
        &[
            payload(i8::MIN, 0, i16::MIN, 0, i32::MIN, 0, i64::MIN, 0),
            payload(
                i8::MAX,
                u8::MAX,
                i16::MAX,
                u16::MAX,
                i32::MAX,
                u32::MAX,
                i64::MAX,
                u64::MAX,
            ),
        ],
    )?;
    check_format(
        &name,
        &[
            "\tfield:s8 a;\toffset:8;\tsize:1;\tsigned:1;",
            "\tfield:u8 b;\toffset:9;\tsize:1;\tsigned:0;",
            "\tfield:s16 c;\toffset:10;\tsize:2;\tsigned:1;",
            "\tfield:u16 d;\toffset:12;\tsize:2;\tsigned:0;",
            "\tfield:s32 e;\toffset:14;\tsize:4;\tsigned:1;",
            "\tfield:u32 f;\toffset:18;\tsize:4;\tsigned:0;",
            "\tfield:s64 g;\toffset:22;\tsize:8;\tsigned:1;",
            "\tfield:u64 h;\toffset:30;\tsize:8;\tsigned:0;",
            "print fmt: \"a=%d b=%u c=%d d=%u e=%d f=%u g=%lld h=%llu\", REC->a, REC->b, REC->c, REC->d, REC->e, REC->f, REC->g, REC->h",
        ],
    )?;
    // 1-byte fields: 'c' only when isprint (0x80 and 0x7f are not, Latin-1 0xff is), then
    // the unsigned byte; 2-byte ones print unsigned twice; 4 and 8 print signed decimals.
    check_trace(
        cx,
        &name,
        &[
            b"a=(128) b=(0) c=0x8000 (32768) d=0x0 (0) e=0x80000000 (-2147483648) f=0x0 (0) \
g=0x8000000000000000 (-9223372036854775808) h=0x0 (0)",
            b"a=(127) b='\xff'(255) c=0x7fff (32767) d=0xffff (65535) e=0x7fffffff (2147483647) \
f=0xffffffff (-1) g=0x7fffffffffffffff (9223372036854775807) h=0xffffffffffffffff (-1)",
        ],
    )
}

fn c_type_names(cx: &mut Ctx) -> R {
    let mut p = (-1i32).to_ne_bytes().to_vec();
    p.extend(0x8000_0000u32.to_ne_bytes());
    p.extend((-2i16).to_ne_bytes());
    p.extend(40000u16.to_ne_bytes());
    p.extend([b'z', 200]);
    let name = write_all(
        cx,
        "int a;unsigned int b;short c;unsigned short d;char e;unsigned char f",
        &[p],
    )?;
    check_format(
        &name,
        &[
            "\tfield:int a;\toffset:8;\tsize:4;\tsigned:1;",
            "\tfield:unsigned int b;\toffset:12;\tsize:4;\tsigned:0;",
            "\tfield:short c;\toffset:16;\tsize:2;\tsigned:1;",
            "\tfield:unsigned short d;\toffset:18;\tsize:2;\tsigned:0;",
            "\tfield:char e;\toffset:20;\tsize:1;\tsigned:1;",
            "\tfield:unsigned char f;\toffset:21;\tsize:1;\tsigned:0;",
            "print fmt: \"a=%d b=%u c=%d d=%u e=%d f=%u\", REC->a, REC->b, REC->c, REC->d, REC->e, REC->f",
        ],
    )?;
    check_trace(
        cx,
        &name,
        &[
            b"a=0xffffffff (-1) b=0x80000000 (-2147483648) c=0xfffe (65534) d=0x9c40 (40000) \
e='z'(122) f='\xc8'(200)",
        ],
    )
}

fn struct_fields(cx: &mut Ctx) -> R {
    let mut p = vec![b'A'];
    p.extend(0x1234u16.to_ne_bytes());
    p.extend(0xdead_beefu32.to_ne_bytes());
    p.extend(0x0102_0304_0506_0708u64.to_ne_bytes());
    p.extend([0xee; 3]);
    p.extend([0xff; 16]);
    p.extend(42u32.to_ne_bytes());
    let name = write_all(
        cx,
        "struct p a 1;struct q b 2;struct r c 4;struct s d 8;struct t e 3;struct u f 16;u32 g",
        &[p],
    )?;
    check_format(
        &name,
        &[
            "\tfield:struct p a;\toffset:8;\tsize:1;\tsigned:1;",
            "\tfield:struct q b;\toffset:9;\tsize:2;\tsigned:1;",
            "\tfield:struct r c;\toffset:11;\tsize:4;\tsigned:1;",
            "\tfield:struct s d;\toffset:15;\tsize:8;\tsigned:1;",
            "\tfield:struct t e;\toffset:23;\tsize:3;\tsigned:1;",
            "\tfield:struct u f;\toffset:26;\tsize:16;\tsigned:1;",
            "\tfield:u32 g;\toffset:42;\tsize:4;\tsigned:0;",
            "print fmt: \"a=%llu b=%llu c=%llu d=%llu e=%llu f=%llu g=%u\", REC->a, REC->b, REC->c, REC->d, REC->e, REC->f, REC->g",
        ],
    )?;
    check_trace(
        cx,
        &name,
        &[b"a='A'(65) b=0x1234 (4660) c=0xdeadbeef (-559038737) d=0x102030405060708 (72623859790382856) \
e=<INVALID-SIZE> f=<INVALID-SIZE> g=0x2a (42)"],
    )
}

fn unsigned_char_arrays(cx: &mut Ctx) -> R {
    // Fixed part: a@8 (4), b@12 (3), c loc@15, d loc@19, e@23; the strings follow at 24.
    let mut p = b"abcd".to_vec();
    p.extend(b"xy\0");
    p.extend((3u32 << 16 | 24).to_ne_bytes());
    // d's text at 27: relative to the end of its loc field (19 + 4), offset 4.
    p.extend((4u32 << 16 | 4).to_ne_bytes());
    p.push(b'!');
    p.extend(b"cc\0");
    p.extend(b"ddd\0");
    let name = write_all(
        cx,
        "char[4] a;unsigned char[3] b;__data_loc unsigned char[] c;__rel_loc unsigned char[] d;u8 e",
        &[p],
    )?;
    check_format(
        &name,
        &["print fmt: \"a=%s b=%s c=%s d=%s e=%u\", REC->a, REC->b, __get_str(c), __get_rel_str(d), REC->e"],
    )?;
    for (before, after) in [
        ("\tfield:char a[", "];\toffset:8;\tsize:4;\tsigned:1;"),
        (
            "\tfield:unsigned char b[",
            "];\toffset:12;\tsize:3;\tsigned:0;",
        ),
        (
            "\tfield:__rel_loc unsigned char d[",
            "];\toffset:19;\tsize:4;\tsigned:1;",
        ),
    ] {
        kit::check_array_format(&name, before, after)?;
    }
    // The __data_loc line has no length; its `signed` comes from the type's first letter
    // ('_', so 1 even for unsigned char): not asserted.
    let format = tracefs::format(&name)?;
    crate::check!(
        format.lines().any(|l| l
            .starts_with("\tfield:__data_loc unsigned char[] c;\toffset:15;\tsize:4;\tsigned:")),
        "format of {name} has no __data_loc unsigned char[] c line at offset 15:\n{format}"
    );
    check_trace(cx, &name, &[b"a=abcd b=xy c=cc d=ddd e='!'(33)"])
}

fn several_dynamic_fields(cx: &mut Ctx) -> R {
    // Fixed part: a loc@8, n@12 (2), b loc@14, c loc@18, d loc@22; strings from 26, in the
    // order d, c, b (empty), a.
    let mut p = (6u32 << 16 | 40).to_ne_bytes().to_vec();
    p.extend(0x102u16.to_ne_bytes());
    p.extend((1u32 << 16 | (39 - 18)).to_ne_bytes());
    p.extend((6u32 << 16 | 33).to_ne_bytes());
    p.extend((7u32 << 16).to_ne_bytes());
    p.extend(b"fourth\0third\0\0first\0");
    let name = write_all(
        cx,
        "__data_loc char[] a;u16 n;__rel_loc char[] b;__data_loc char[] c;__rel_loc char[] d",
        &[p],
    )?;
    check_format(
        &name,
        &[
            "\tfield:__data_loc char[] a;\toffset:8;\tsize:4;\tsigned:1;",
            "\tfield:u16 n;\toffset:12;\tsize:2;\tsigned:0;",
            "\tfield:__data_loc char[] c;\toffset:18;\tsize:4;\tsigned:1;",
            "print fmt: \"a=%s n=%u b=%s c=%s d=%s\", __get_str(a), REC->n, __get_rel_str(b), __get_str(c), __get_rel_str(d)",
        ],
    )?;
    for (before, after) in [
        (
            "\tfield:__rel_loc char b[",
            "];\toffset:14;\tsize:4;\tsigned:1;",
        ),
        (
            "\tfield:__rel_loc char d[",
            "];\toffset:22;\tsize:4;\tsigned:1;",
        ),
    ] {
        kit::check_array_format(&name, before, after)?;
    }
    check_trace(cx, &name, &[b"a=first n=0x102 (258) b= c=third d=fourth"])
}
