//! STUB: AWS event-stream decoder (to be written).
#[derive(Debug, Clone, PartialEq)]
pub struct Message;
#[derive(Debug, Default)]
pub struct Decoder;
impl Decoder {
    pub fn new() -> Self { Decoder }
    pub fn feed(&mut self, _chunk: &[u8], _out: &mut Vec<Message>) -> Result<(), String> { Err("stub".into()) }
    pub fn finish(&mut self) -> Result<(), String> { Ok(()) }
}
