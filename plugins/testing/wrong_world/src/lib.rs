//! `wrong_world`: a component that implements another world than tailcar's plugin world, for
//! the test that tailcar refuses it at start with the plugin's path and the reason.

wit_bindgen::generate!({ path: "wit", world: "wrong" });

struct Wrong;

impl Guest for Wrong {
    fn run(input: String) -> u32 {
        input.len() as u32
    }
}

export!(Wrong);
