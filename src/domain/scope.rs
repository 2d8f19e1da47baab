//! What a caller may do: the scopes routes require and credentials grant.

/// One permission. Written `invitations:send` and `credit:allocate` in settings, tokens and
/// problem bodies; settings hold them as this type, so an unknown scope stops the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// `invitations:send`
    SendInvitations,
    /// `credit:allocate`
    AllocateCredit,
    /// `customers:read`
    ReadCustomers,
}

impl Scope {
    pub const ALL: [Scope; 3] = [
        Scope::SendInvitations,
        Scope::AllocateCredit,
        Scope::ReadCustomers,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendInvitations => "invitations:send",
            Self::AllocateCredit => "credit:allocate",
            Self::ReadCustomers => "customers:read",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == s)
    }
}

impl serde::Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Scope::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{text}` is not a scope (invitations:send, credit:allocate, customers:read)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Scope;

    #[test]
    fn scopes_read_and_write_as_their_names() {
        for scope in Scope::ALL {
            let json = serde_json::to_string(&scope).unwrap();
            assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), scope);
        }
        let err = serde_json::from_str::<Scope>("\"credit:steal\"").unwrap_err();
        assert!(err.to_string().contains("not a scope"), "{err}");
    }
}
