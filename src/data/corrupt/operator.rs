//! The corruption operators (DESIGN §3): their names as data files and the command line
//! spell them, and which are line or token operators.
use serde::{Deserialize, Serialize};

/// One kind of synthetic bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    DeleteLine,
    InsertDonorLine,
    ReplaceWithDonorLine,
    DuplicateLine,
    SwapLines,
    Reindent,
    SwapComparison,
    SwapArithmetic,
    SwapBoolean,
    OffByOne,
    WrongVariable,
    DropReturn,
    NegateCondition,
    WrongIndex,
}

impl Operator {
    pub const ALL: [Operator; 14] = [
        Operator::DeleteLine,
        Operator::InsertDonorLine,
        Operator::ReplaceWithDonorLine,
        Operator::DuplicateLine,
        Operator::SwapLines,
        Operator::Reindent,
        Operator::SwapComparison,
        Operator::SwapArithmetic,
        Operator::SwapBoolean,
        Operator::OffByOne,
        Operator::WrongVariable,
        Operator::DropReturn,
        Operator::NegateCondition,
        Operator::WrongIndex,
    ];

    /// The snake_case name stored in a Task's `corruptions`.
    pub fn name(&self) -> &'static str {
        match self {
            Operator::DeleteLine => "delete_line",
            Operator::InsertDonorLine => "insert_donor_line",
            Operator::ReplaceWithDonorLine => "replace_with_donor_line",
            Operator::DuplicateLine => "duplicate_line",
            Operator::SwapLines => "swap_lines",
            Operator::Reindent => "reindent",
            Operator::SwapComparison => "swap_comparison",
            Operator::SwapArithmetic => "swap_arithmetic",
            Operator::SwapBoolean => "swap_boolean",
            Operator::OffByOne => "off_by_one",
            Operator::WrongVariable => "wrong_variable",
            Operator::DropReturn => "drop_return",
            Operator::NegateCondition => "negate_condition",
            Operator::WrongIndex => "wrong_index",
        }
    }

    /// The operator with this `name()`, if any.
    pub fn from_name(name: &str) -> Option<Operator> {
        Operator::ALL.into_iter().find(|op| op.name() == name)
    }
}
