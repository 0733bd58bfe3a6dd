//! `fermyon:spin/variables@2.0.0` with Spin's semantics.
//!
//! A component sees only the variables its manifest declares under
//! `[component.x.variables]`, each a template that may reference application
//! variables as `{{ name }}`. An application variable's value comes from the
//! environment (`SPIN_VARIABLE_<NAME>`), else from the host's `--variable`
//! options, else from its `default`. A `required` variable with no value stops
//! the host at start, as `spin up` does ("no provider resolved required
//! variable(s)").

use std::collections::BTreeMap;

use anyhow::{bail, Result};

use crate::manifest::{check_variable_name, Manifest};
use crate::bindings::fermyon::spin::variables::{self, Error};

/// Application variables resolved at start, and each component's templates.
pub struct Resolver {
    app: BTreeMap<String, Option<String>>,
    components: BTreeMap<String, BTreeMap<String, String>>,
}

impl Resolver {
    pub fn new(manifest: &Manifest, given: &BTreeMap<String, String>) -> Result<Resolver> {
        let mut app = BTreeMap::new();
        let mut missing = Vec::new();
        for (name, decl) in &manifest.variables {
            let env_name = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
            let value = std::env::var(&env_name)
                .ok()
                .or_else(|| given.get(name).cloned())
                .or_else(|| decl.default.clone());
            if value.is_none() && decl.required {
                missing.push(name.clone());
            }
            app.insert(name.clone(), value);
        }
        if !missing.is_empty() {
            bail!(
                "no provider resolved required variable(s): {}",
                missing.join(", ")
            );
        }
        for name in given.keys() {
            if !manifest.variables.contains_key(name) {
                bail!("--variable {name}: the manifest declares no such variable");
            }
        }
        let components = manifest
            .components
            .iter()
            .map(|(id, c)| (id.clone(), c.variables.clone()))
            .collect();
        Ok(Resolver { app, components })
    }

    /// The value of `name` for `component`, as Spin resolves it.
    pub fn get(&self, component: &str, name: &str) -> Result<String, Error> {
        if check_variable_name(name).is_err() {
            return Err(Error::InvalidName(format!(
                "invalid variable name {name:?}"
            )));
        }
        let Some(template) = self.components.get(component).and_then(|m| m.get(name)) else {
            return Err(Error::Undefined(format!(
                "no variable for {component:?}.{name:?}"
            )));
        };
        self.render(template).map_err(Error::Provider)
    }

    /// A template (`{{ name }}` for application variables) rendered.
    pub(crate) fn render(&self, template: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed '{{{{' in {template:?}"))?;
            let var = after[..end].trim();
            match self.app.get(var) {
                Some(Some(v)) => out.push_str(v),
                Some(None) => return Err(format!("no value for variable {var:?}")),
                None => return Err(format!("template references undeclared variable {var:?}")),
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// What `fermyon:spin/variables` sees: the resolver and the component.
pub struct VarsView<'a> {
    pub resolver: &'a Resolver,
    pub component: &'a str,
}

/// The linker's projection type for [`VarsView`].
pub struct Vars;

impl wasmtime::component::HasData for Vars {
    type Data<'a> = VarsView<'a>;
}

impl variables::Host for VarsView<'_> {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<String, Error>> {
        Ok(self.resolver.get(self.component, &name))
    }
}
