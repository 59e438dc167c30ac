//! The Files API: upload reference media (kind sniffed from the bytes, as
//! the server decides it) and read file objects back.

use crate::client::{Body, Call, Client, new_idempotency_key};
use crate::error::{Error, Result};
use bytes::Bytes;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The largest upload the API takes (video, 50 MiB); readers are not read past it.
pub const MAX_UPLOAD_BYTES: u64 = 50 * 1024 * 1024;

/// The File object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileObject {
    /// `file_…`.
    pub id: String,
    /// `image`, `video` or `audio`.
    pub kind: String,
    /// Signed, expiring link; what goes into `params.referenceMediaItems[].url`.
    pub url: String,
    /// The uploaded file name.
    #[serde(default)]
    pub name: Option<String>,
    /// Decided from the bytes.
    pub mime_type: String,
    /// Bytes.
    pub size_bytes: u64,
    /// Hex SHA-256 of the bytes.
    #[serde(default)]
    pub sha256: String,
    /// Pixels (images).
    #[serde(default)]
    pub width: Option<u32>,
    /// Pixels (images).
    #[serde(default)]
    pub height: Option<u32>,
    /// Seconds (video, audio).
    #[serde(default)]
    pub duration_seconds: Option<f64>,
    /// Server-signed proof of the duration (video, audio).
    #[serde(default)]
    pub duration_token: Option<String>,
    /// The model whose rules were applied.
    #[serde(default)]
    pub model: Option<String>,
    /// Your reference.
    #[serde(default)]
    pub client_request_id: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    pub created_at: String,
    /// RFC 3339; the file is deleted after this.
    #[serde(default)]
    pub expires_at: String,
}

/// A file kind of the Files API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// jpeg, png, webp.
    Image,
    /// mp4, quicktime, webm.
    Video,
    /// mpeg, mp4, wav, aac, ogg.
    Audio,
}

impl FileKind {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
        }
    }
}

impl std::str::FromStr for FileKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "image" => Ok(Self::Image),
            "video" => Ok(Self::Video),
            "audio" => Ok(Self::Audio),
            other => Err(Error::InvalidInput(format!(
                "{other:?} is not a file kind (image, video, audio)"
            ))),
        }
    }
}

impl std::fmt::Display for FileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind and MIME type of media, from its first bytes (magic numbers) —
/// the way the server decides it, never from a file name.
pub fn sniff(bytes: &[u8]) -> Option<(FileKind, &'static str)> {
    let at = |i: usize, m: &[u8]| bytes.len() >= i + m.len() && &bytes[i..i + m.len()] == m;
    if at(0, b"\x89PNG\r\n\x1a\n") {
        return Some((FileKind::Image, "image/png"));
    }
    if at(0, b"\xff\xd8\xff") {
        return Some((FileKind::Image, "image/jpeg"));
    }
    if at(0, b"RIFF") && at(8, b"WEBP") {
        return Some((FileKind::Image, "image/webp"));
    }
    if at(0, b"RIFF") && at(8, b"WAVE") {
        return Some((FileKind::Audio, "audio/wav"));
    }
    if at(4, b"ftyp") {
        // Audio-only MPEG-4 brands; everything else with `ftyp` is video.
        return Some(if at(8, b"M4A ") || at(8, b"M4B ") {
            (FileKind::Audio, "audio/mp4")
        } else if at(8, b"qt  ") {
            (FileKind::Video, "video/quicktime")
        } else {
            (FileKind::Video, "video/mp4")
        });
    }
    if at(0, b"\x1a\x45\xdf\xa3") {
        return Some((FileKind::Video, "video/webm"));
    }
    if at(0, b"OggS") {
        return Some((FileKind::Audio, "audio/ogg"));
    }
    if at(0, b"ID3") {
        return Some((FileKind::Audio, "audio/mpeg"));
    }
    if bytes.len() >= 2 && bytes[0] == 0xff {
        // ADTS AAC: sync word, layer 00; MPEG audio frames: sync, layer != 00.
        if bytes[1] & 0xf6 == 0xf0 {
            return Some((FileKind::Audio, "audio/aac"));
        }
        if bytes[1] & 0xe0 == 0xe0 && bytes[1] & 0x06 != 0 {
            return Some((FileKind::Audio, "audio/mpeg"));
        }
    }
    None
}

/// Upload progress: `(bytes sent, total bytes)`.
pub type UploadProgress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// A file to upload. Build it from a path, bytes or a reader.
#[derive(Clone)]
pub struct Upload {
    bytes: Bytes,
    name: Option<String>,
    kind: Option<FileKind>,
    model: Option<String>,
    client_request_id: Option<String>,
    progress: Option<UploadProgress>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("len", &self.bytes.len())
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("model", &self.model)
            .finish()
    }
}

impl Upload {
    /// Bytes in memory, with an optional file name.
    pub fn from_bytes(bytes: impl Into<Bytes>, name: Option<String>) -> Self {
        Self {
            bytes: bytes.into(),
            name,
            kind: None,
            model: None,
            client_request_id: None,
            progress: None,
        }
    }

    /// A file on disk (its name is sent as the file name).
    pub async fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if meta.len() > MAX_UPLOAD_BYTES {
            return Err(Error::InvalidInput(format!(
                "{} is {} bytes; the Files API takes at most {MAX_UPLOAD_BYTES}",
                path.display(),
                meta.len()
            )));
        }
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        Ok(Self::from_bytes(bytes, name))
    }

    /// Everything a reader yields (at most [`MAX_UPLOAD_BYTES`]). The bytes
    /// are kept so that a retried upload sends them again.
    pub async fn from_reader(reader: impl AsyncRead + Unpin, name: Option<String>) -> Result<Self> {
        let mut buf = Vec::new();
        let n = reader
            .take(MAX_UPLOAD_BYTES + 1)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| Error::io("reading the upload", e))?;
        if n as u64 > MAX_UPLOAD_BYTES {
            return Err(Error::InvalidInput(format!(
                "the upload is over {MAX_UPLOAD_BYTES} bytes, the Files API's limit"
            )));
        }
        Ok(Self::from_bytes(buf, name))
    }

    /// Sets the kind instead of sniffing it.
    pub fn kind(mut self, kind: FileKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Applies this model's reference rules on the server.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Your own reference.
    pub fn client_request_id(mut self, id: impl Into<String>) -> Self {
        self.client_request_id = Some(id.into());
        self
    }

    /// Called as the body is sent.
    pub fn on_progress(mut self, f: impl Fn(u64, u64) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// The kind that will be sent: given, or sniffed from the bytes.
    pub fn resolved_kind(&self) -> Result<FileKind> {
        match self.kind {
            Some(k) => Ok(k),
            None => sniff(&self.bytes).map(|(k, _)| k).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "cannot tell what kind of media {} is; give the kind explicitly",
                    self.name.as_deref().unwrap_or("the upload")
                ))
            }),
        }
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    fn form(&self, kind: FileKind) -> reqwest::multipart::Form {
        use reqwest::multipart::{Form, Part};
        let total = self.len();
        let body = match &self.progress {
            None => reqwest::Body::from(self.bytes.clone()),
            Some(p) => {
                // Chunks, so progress moves as the socket takes them.
                let p = p.clone();
                let chunks: Vec<Bytes> = (0..self.bytes.len())
                    .step_by(64 * 1024)
                    .map(|i| self.bytes.slice(i..(i + 64 * 1024).min(self.bytes.len())))
                    .collect();
                let mut sent = 0u64;
                p(0, total);
                reqwest::Body::wrap_stream(futures_util::stream::iter(chunks.into_iter().map(
                    move |c| {
                        sent += c.len() as u64;
                        p(sent, total);
                        Ok::<_, std::io::Error>(c)
                    },
                )))
            }
        };
        let mut part = Part::stream_with_length(body, total);
        part = part.file_name(self.name.clone().unwrap_or_else(|| "upload".into()));
        let mut form = Form::new().text("kind", kind.as_str()).part("file", part);
        if let Some(m) = &self.model {
            form = form.text("model", m.clone());
        }
        if let Some(c) = &self.client_request_id {
            form = form.text("client_request_id", c.clone());
        }
        form
    }
}

/// `client.files()`.
#[derive(Debug, Clone, Copy)]
pub struct Files<'a> {
    client: &'a Client,
}

impl Client {
    /// The Files API.
    pub fn files(&self) -> Files<'_> {
        Files { client: self }
    }
}

impl Files<'_> {
    /// Uploads a file. Retries reuse one `Idempotency-Key`, so a retried
    /// upload stores one file.
    pub async fn upload(&self, upload: Upload) -> Result<FileObject> {
        if upload.is_empty() {
            return Err(Error::InvalidInput("the upload is empty".into()));
        }
        let kind = upload.resolved_kind()?;
        let mut call = Call::new(Method::POST, "api/v1/files").idempotent(new_idempotency_key());
        call.body = Body::Multipart(Box::new(move || upload.form(kind)));
        self.client.json(call).await
    }

    /// A file object.
    pub async fn get(&self, id: &str) -> Result<FileObject> {
        self.client
            .json(Call::get(format!(
                "api/v1/files/{}",
                crate::models::encode_segment(id)
            )))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_kinds_from_magic_numbers() {
        type Case = (&'static [u8], Option<(FileKind, &'static str)>);
        let cases: [Case; 11] = [
            (
                b"\x89PNG\r\n\x1a\n....",
                Some((FileKind::Image, "image/png")),
            ),
            (b"\xff\xd8\xff\xe0", Some((FileKind::Image, "image/jpeg"))),
            (
                b"RIFF\0\0\0\0WEBPVP8 ",
                Some((FileKind::Image, "image/webp")),
            ),
            (
                b"RIFF\0\0\0\0WAVEfmt ",
                Some((FileKind::Audio, "audio/wav")),
            ),
            (b"\0\0\0\x20ftypisom", Some((FileKind::Video, "video/mp4"))),
            (b"\0\0\0\x20ftypM4A ", Some((FileKind::Audio, "audio/mp4"))),
            (b"\x1a\x45\xdf\xa3", Some((FileKind::Video, "video/webm"))),
            (b"OggS\0", Some((FileKind::Audio, "audio/ogg"))),
            (b"ID3\x04", Some((FileKind::Audio, "audio/mpeg"))),
            (b"\xff\xf1\x50\x80", Some((FileKind::Audio, "audio/aac"))),
            (b"hello.png", None),
        ];
        for (bytes, want) in cases {
            assert_eq!(sniff(bytes), want, "{bytes:?}");
        }
        assert_eq!(
            sniff(b"\xff\xfb\x90\x00"),
            Some((FileKind::Audio, "audio/mpeg"))
        );
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn given_kind_wins_and_unknown_bytes_are_refused() {
        let u = Upload::from_bytes(&b"plain text"[..], Some("a.png".into()));
        assert!(u.resolved_kind().is_err());
        assert_eq!(
            u.kind(FileKind::Image).resolved_kind().unwrap(),
            FileKind::Image
        );
    }
}
