//! Windows DPAPI: the whole cache file encrypted with `CryptProtectData` for the current user,
//! the format of msal-extensions' `FilePersistenceWithDataProtection` and its .NET and Node
//! equivalents (the Azure CLI's `msal_token_cache.bin`, azure-identity's
//! `%LOCALAPPDATA%\.IdentityService\msal.cache*`): the file is the bare DPAPI blob, no header
//! and no encoding, sealed with no entropy and `CRYPTPROTECT_UI_FORBIDDEN`.
//!
//! Recognising such a file works everywhere (so that other systems can say what it is);
//! sealing and opening it work on Windows only. Written against `windows-sys` by hand: the
//! two calls and their memory rules are all there is, and no maintained crate wraps exactly
//! this (user scope, optional entropy, UI forbidden) without more than we need.

// The two FFI calls and the memory they return; each unsafe block says why it is sound.
#![allow(unsafe_code)]

/// The start of every DPAPI blob: version 1, then the provider GUID
/// df9d8cd0-1501-11d1-8c7a-00c04fc297eb in its little-endian byte order.
const BLOB_START: [u8; 20] = [
    0x01, 0x00, 0x00, 0x00, 0xd0, 0x8c, 0x9d, 0xdf, 0x01, 0x15, 0xd1, 0x11, 0x8c, 0x7a, 0x00, 0xc0,
    0x4f, 0xc2, 0x97, 0xeb,
];

/// Where Wine's DPAPI (crypt32) puts its own marker instead of Windows' provider GUID: a blob
/// only Wine opens, recognised so that the store's tests run under Wine.
const WINE_BLOB_START: [u8; 20] = *b"\x01\x00\x00\x00Wine Crypt32 ok\x00";

/// True when `bytes` are a Windows DPAPI blob (the Azure CLI's `msal_token_cache.bin`,
/// msal-extensions' `FilePersistenceWithDataProtection`), or one Wine's DPAPI wrote. Works on
/// every system.
pub fn is_dpapi_protected(bytes: &[u8]) -> bool {
    bytes.starts_with(&BLOB_START) || bytes.starts_with(&WINE_BLOB_START)
}

/// The description msal-extensions gives its blobs; stored inside the blob, irrelevant to
/// decryption, written the same so that a file of ours looks like one of theirs.
#[cfg(windows)]
const DESCRIPTION: &str = "python_data";

/// Seals `plain` for the current user (no entropy, no UI), as msal-extensions does.
#[cfg(windows)]
pub(crate) fn protect(plain: &[u8]) -> std::io::Result<Vec<u8>> {
    use windows_sys::Win32::Security::Cryptography::{
        CRYPT_INTEGER_BLOB, CRYPTPROTECT_UI_FORBIDDEN, CryptProtectData,
    };
    let input = CRYPT_INTEGER_BLOB {
        cbData: u32::try_from(plain.len()).map_err(|_| std::io::Error::other("cache too large"))?,
        pbData: plain.as_ptr().cast_mut(),
    };
    let description: Vec<u16> = DESCRIPTION.encode_utf16().chain([0]).collect();
    let mut output = CRYPT_INTEGER_BLOB::default();
    // SAFETY: every pointer is valid for the call; `input` is only read. On success the
    // system allocated `output` with LocalAlloc, which `take_local` copies and frees.
    let ok = unsafe {
        CryptProtectData(
            &input,
            description.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
            CRYPTPROTECT_UI_FORBIDDEN,
            &mut output,
        )
    };
    if ok == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    Ok(unsafe { take_local(output) }.to_vec())
}

/// Opens a blob sealed for the current user with no entropy.
#[cfg(windows)]
pub(crate) fn unprotect(blob: &[u8]) -> std::io::Result<zeroize::Zeroizing<Vec<u8>>> {
    use windows_sys::Win32::Security::Cryptography::{
        CRYPT_INTEGER_BLOB, CRYPTPROTECT_UI_FORBIDDEN, CryptUnprotectData,
    };
    let input = CRYPT_INTEGER_BLOB {
        cbData: u32::try_from(blob.len()).map_err(|_| std::io::Error::other("file too large"))?,
        pbData: blob.as_ptr().cast_mut(),
    };
    let mut output = CRYPT_INTEGER_BLOB::default();
    // SAFETY: as in `protect`; no description is asked for.
    let ok = unsafe {
        CryptUnprotectData(
            &input,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
            CRYPTPROTECT_UI_FORBIDDEN,
            &mut output,
        )
    };
    if ok == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as in `protect`.
    Ok(unsafe { take_local(output) })
}

/// Copies a blob the system allocated with LocalAlloc into wiped memory, wipes it, and frees
/// it.
///
/// # Safety
/// `blob` must come from a successful DPAPI call and not be used afterwards.
#[cfg(windows)]
unsafe fn take_local(
    blob: windows_sys::Win32::Security::Cryptography::CRYPT_INTEGER_BLOB,
) -> zeroize::Zeroizing<Vec<u8>> {
    if blob.pbData.is_null() {
        return zeroize::Zeroizing::new(Vec::new());
    }
    // SAFETY: the system gave `cbData` bytes at `pbData`.
    let bytes = unsafe { std::slice::from_raw_parts_mut(blob.pbData, blob.cbData as usize) };
    let copy = zeroize::Zeroizing::new(bytes.to_vec());
    zeroize::Zeroize::zeroize(bytes);
    // SAFETY: allocated by the system with LocalAlloc, freed once.
    unsafe { windows_sys::Win32::Foundation::LocalFree(blob.pbData.cast()) };
    copy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_blob_start_and_nothing_else() {
        let mut blob = BLOB_START.to_vec();
        blob.extend_from_slice(&[0; 40]);
        assert!(is_dpapi_protected(&blob));
        assert!(!is_dpapi_protected(&blob[..19]));
        // The start of a blob CryptProtectData wrote on Windows 11 (hex from a real file).
        let windows = hex_bytes("01000000d08c9ddf0115d1118c7a00c04fc297eb01000000");
        assert!(is_dpapi_protected(&windows));
        assert!(!is_dpapi_protected(b"{\"AccessToken\": {}}"));
        assert!(!is_dpapi_protected(b""));
    }

    fn hex_bytes(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[cfg(windows)]
    #[test]
    fn round_trip_for_the_current_user() {
        let plain = br#"{"AccessToken": {}}"#;
        let blob = protect(plain).expect("protect");
        assert!(
            is_dpapi_protected(&blob),
            "a DPAPI blob: {:02x?}",
            &blob[..20]
        );
        assert!(!blob.windows(plain.len()).any(|w| w == plain), "sealed");
        assert_eq!(unprotect(&blob).expect("unprotect").as_slice(), plain);
        let mut damaged = blob.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(unprotect(&damaged).is_err(), "a damaged blob is refused");
        assert!(unprotect(plain).is_err(), "plain text is refused");
    }
}
