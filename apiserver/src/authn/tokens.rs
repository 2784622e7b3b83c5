//! `--token-auth-file`: kube's static token file, CSV lines of
//! `token,user,uid[,"group1,group2,..."]`.

use std::collections::HashMap;
use std::path::Path;

use super::User;

/// The tokens of a token file.
#[derive(Debug, Default)]
pub struct TokenFile {
    users: HashMap<String, User>,
}

/// Splits one CSV line, honouring double quotes (a quoted field may hold commas).
fn fields(line: &str) -> Vec<String> {
    let (mut out, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    out.push(field);
    out
}

impl TokenFile {
    /// Parses the file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<TokenFile, String> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = fields(line);
            if fields.len() < 3 {
                return Err(format!(
                    "{origin}:{}: a token line has token,user,uid[,groups]",
                    n + 1
                ));
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            let token = fields[0].trim().to_string();
            if token.is_empty() {
                return Err(format!("{origin}:{}: an empty token", n + 1));
            }
            users.insert(
                token,
                User::authenticated(fields[1].trim(), fields[2].trim(), groups),
            );
        }
        Ok(TokenFile { users })
    }

    /// Reads a token file.
    pub fn load(path: &Path) -> Result<TokenFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        TokenFile::parse(&text, &path.display().to_string())
    }

    /// The user a token names.
    pub fn user(&self, token: &str) -> Option<User> {
        self.users.get(token).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_token_lines_name_users_and_groups() {
        let file = TokenFile::parse(
            "# comment\nt1,alice,1001,\"devs,ops\"\nt2,bob,1002\n",
            "tokens.csv",
        )
        .unwrap();
        let alice = file.user("t1").unwrap();
        assert_eq!((alice.name.as_str(), alice.uid.as_str()), ("alice", "1001"));
        assert_eq!(alice.groups, ["devs", "ops", "system:authenticated"]);
        assert_eq!(file.user("t2").unwrap().groups, ["system:authenticated"]);
        assert!(file.user("t3").is_none());
        assert!(TokenFile::parse("only,two", "x").is_err());
    }
}
