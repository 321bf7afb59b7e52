//! JSON has no NaN or infinity, and `serde_json` quietly writes `null` for them. A
//! result must not silently change, so outputs are checked for non-finite numbers
//! first, by a serializer that visits every value and produces nothing.

use std::fmt;

use serde::ser::{self, Serialize};

/// The first non-finite float in `value`, as an error naming where it is.
pub(super) fn check(value: &impl Serialize) -> Result<(), NonFinite> {
    value.serialize(&mut Finder { path: Vec::new() })
}

/// A NaN or infinity, and where it was found (`items[2].price`).
#[derive(Debug)]
pub(super) struct NonFinite(String);

impl fmt::Display for NonFinite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NonFinite {}

impl ser::Error for NonFinite {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

struct Finder {
    /// Where the value being visited is: keys and indexes.
    path: Vec<String>,
}

impl Finder {
    fn float(&self, value: f64) -> Result<(), NonFinite> {
        if value.is_finite() {
            return Ok(());
        }
        let mut at = String::new();
        for part in &self.path {
            if !part.starts_with('[') && !at.is_empty() {
                at.push('.');
            }
            at.push_str(part);
        }
        let at = if at.is_empty() { String::new() } else { format!(" at {at}") };
        Err(NonFinite(format!("{value}{at} is not a JSON number (JSON has no NaN or infinity)")))
    }

    fn nested(&mut self, part: String, value: &(impl Serialize + ?Sized)) -> Result<(), NonFinite> {
        self.path.push(part);
        let result = value.serialize(&mut *self);
        self.path.pop();
        result
    }
}

macro_rules! accept {
    ($($method:ident($($ty:ty),*);)*) => {
        $(fn $method(self, $(_: $ty),*) -> Result<(), NonFinite> { Ok(()) })*
    };
}

impl<'a> ser::Serializer for &'a mut Finder {
    type Ok = ();
    type Error = NonFinite;
    type SerializeSeq = Indexed<'a>;
    type SerializeTuple = Indexed<'a>;
    type SerializeTupleStruct = Indexed<'a>;
    type SerializeTupleVariant = Indexed<'a>;
    type SerializeMap = Keyed<'a>;
    type SerializeStruct = Keyed<'a>;
    type SerializeStructVariant = Keyed<'a>;

    accept! {
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32); serialize_i64(i64);
        serialize_i128(i128); serialize_u8(u8); serialize_u16(u16); serialize_u32(u32); serialize_u64(u64);
        serialize_u128(u128); serialize_char(char); serialize_str(&str); serialize_bytes(&[u8]);
        serialize_none(); serialize_unit(); serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn serialize_f32(self, v: f32) -> Result<(), NonFinite> {
        self.float(f64::from(v))
    }

    fn serialize_f64(self, v: f64) -> Result<(), NonFinite> {
        self.float(v)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), NonFinite> {
        value.serialize(self)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<(), NonFinite> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), NonFinite> {
        self.nested(variant.to_owned(), value)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Indexed<'a>, NonFinite> {
        Ok(Indexed { finder: self, index: 0 })
    }

    fn serialize_tuple(self, _: usize) -> Result<Indexed<'a>, NonFinite> {
        Ok(Indexed { finder: self, index: 0 })
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Indexed<'a>, NonFinite> {
        Ok(Indexed { finder: self, index: 0 })
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Indexed<'a>, NonFinite> {
        Ok(Indexed { finder: self, index: 0 })
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Keyed<'a>, NonFinite> {
        Ok(Keyed { finder: self, key: String::new() })
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Keyed<'a>, NonFinite> {
        Ok(Keyed { finder: self, key: String::new() })
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Keyed<'a>, NonFinite> {
        Ok(Keyed { finder: self, key: String::new() })
    }
}

/// Elements of a sequence or tuple, named by index.
struct Indexed<'a> {
    finder: &'a mut Finder,
    index: usize,
}

impl Indexed<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NonFinite> {
        let part = format!("[{}]", self.index);
        self.index += 1;
        self.finder.nested(part, value)
    }
}

macro_rules! indexed {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Indexed<'_> {
            type Ok = ();
            type Error = NonFinite;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NonFinite> {
                self.element(value)
            }
            fn end(self) -> Result<(), NonFinite> {
                Ok(())
            }
        }
    )*};
}

indexed!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// Entries of a map or struct, named by key.
struct Keyed<'a> {
    finder: &'a mut Finder,
    key: String,
}

impl ser::SerializeMap for Keyed<'_> {
    type Ok = ();
    type Error = NonFinite;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), NonFinite> {
        // Keys are named by their JSON text; a key that is not a string fails later,
        // in serde_json, with its own message.
        self.key = serde_json::to_value(key).ok().and_then(|k| k.as_str().map(str::to_owned)).unwrap_or_default();
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NonFinite> {
        let key = std::mem::take(&mut self.key);
        self.finder.nested(key, value)
    }

    fn end(self) -> Result<(), NonFinite> {
        Ok(())
    }
}

macro_rules! keyed {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Keyed<'_> {
            type Ok = ();
            type Error = NonFinite;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), NonFinite> {
                self.finder.nested(key.to_owned(), value)
            }
            fn end(self) -> Result<(), NonFinite> {
                Ok(())
            }
        }
    )*};
}

keyed!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(serde::Serialize)]
    struct Item {
        name: &'static str,
        price: f64,
    }

    #[test]
    fn finite_values_pass() {
        assert!(check(&vec![Item { name: "a", price: 1.5 }]).is_ok());
        assert!(check(&(1, "x", Some(2.0f32), [0.0; 3])).is_ok());
    }

    #[test]
    fn nan_and_infinity_are_found_with_their_path() {
        let items = vec![Item { name: "a", price: 1.0 }, Item { name: "b", price: f64::NAN }];
        assert_eq!(
            check(&items).unwrap_err().to_string(),
            "NaN at [1].price is not a JSON number (JSON has no NaN or infinity)"
        );
        let mut map = BTreeMap::new();
        map.insert("ratio", vec![f32::INFINITY]);
        assert_eq!(
            check(&map).unwrap_err().to_string(),
            "inf at ratio[0] is not a JSON number (JSON has no NaN or infinity)"
        );
        assert_eq!(
            check(&f64::NEG_INFINITY).unwrap_err().to_string(),
            "-inf is not a JSON number (JSON has no NaN or infinity)"
        );
    }
}
