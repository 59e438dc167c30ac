use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "models:read")]
    ModelsRead,
    #[serde(rename = "generations:create")]
    GenerationsCreate,
    #[serde(rename = "generations:read")]
    GenerationsRead,
    #[serde(rename = "files:create")]
    FilesCreate,
    #[serde(rename = "files:read")]
    FilesRead,
    #[serde(rename = "credits:read")]
    CreditsRead,
    #[serde(rename = "webhooks:manage")]
    WebhooksManage,
    /// The account's own API keys (`/api/v1/keys`): list, create, revoke.
    #[serde(rename = "keys:manage")]
    KeysManage,
}

impl Scope {
    pub const ALL: [Scope; 8] = [
        Scope::ModelsRead,
        Scope::GenerationsCreate,
        Scope::GenerationsRead,
        Scope::FilesCreate,
        Scope::FilesRead,
        Scope::CreditsRead,
        Scope::WebhooksManage,
        Scope::KeysManage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ModelsRead => "models:read",
            Scope::GenerationsCreate => "generations:create",
            Scope::GenerationsRead => "generations:read",
            Scope::FilesCreate => "files:create",
            Scope::FilesRead => "files:read",
            Scope::CreditsRead => "credits:read",
            Scope::WebhooksManage => "webhooks:manage",
            Scope::KeysManage => "keys:manage",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Parses a comma- or space-separated list; an unknown name is an error
    /// naming it, so an operator typo never silently narrows a key.
    pub fn parse_list(s: &str) -> Result<Vec<Scope>, String> {
        let mut out = Vec::new();
        for part in s.split([',', ' ']).filter(|p| !p.is_empty()) {
            let sc = Scope::parse(part).ok_or_else(|| format!("unknown scope {part:?}"))?;
            if !out.contains(&sc) {
                out.push(sc);
            }
        }
        out.sort();
        Ok(out)
    }
}

/// The buckets a key's request budget is split into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestClass {
    Create,
    Read,
    Upload,
}

impl RequestClass {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestClass::Create => "create",
            RequestClass::Read => "read",
            RequestClass::Upload => "upload",
        }
    }
}
