//! Authentication: who is asking. This stage names the user of every request; part 2 of
//! the API server adds tokens, service accounts and impersonation here. Today: a client
//! certificate verified against --client-ca-file names its CN as the user and its O
//! entries as groups; any other request is anonymous.

use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::transport::Peer;

/// The authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user name.
    pub name: String,
    /// Groups, `system:authenticated` included.
    pub groups: Vec<String>,
}

/// The user of a request on this connection.
pub fn authenticate(peer: &Peer) -> User {
    if let Some(der) = &peer.certificate {
        if let Ok((_, cert)) = X509Certificate::from_der(der) {
            let subject = cert.subject();
            let name = subject
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(String::from);
            if let Some(name) = name {
                let mut groups: Vec<String> = subject
                    .iter_organization()
                    .filter_map(|o| o.as_str().ok().map(String::from))
                    .collect();
                groups.push("system:authenticated".into());
                return User { name, groups };
            }
        }
    }
    User {
        name: "system:anonymous".into(),
        groups: vec!["system:unauthenticated".into()],
    }
}
